// Package clock is the one time source of Firebreak. Everything that waits or stamps time takes a
// Clock: Real in production, Scaled for the demo and the hardware-in-loop tests (simulator and
// daemon share one, so a 60-minute fire plays in one minute with the same detector windows), and
// Manual for tests that step time by hand. It owns no goroutines of its own.
package clock

import (
	"context"
	"time"
)

// Clock tells the time and makes timers that fire in that clock's time.
type Clock interface {
	Now() time.Time
	// NewTimer fires once, d from now in this clock's time.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that callers use.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Sleep waits d in c's time, or until ctx ends (then it returns ctx.Err()).
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Scaled runs Speed times faster than the wall clock, starting at Epoch.
type Scaled struct {
	epoch     time.Time
	realStart time.Time
	speed     float64
}

// NewScaled returns a clock that reads epoch now and advances speed seconds per real second.
//
// It counts on the wall clock, not the monotonic one, so that every process that shares its
// origin (NewScaledFrom) reads the same time: an origin passed to another process loses its
// monotonic reading, and a wall-clock step or a paused machine (the monotonic clock stands still
// while the host's is suspended, the wall clock is set forward when it resumes) would otherwise put
// a daemon 30 scenario minutes ahead of the simulator it polls after one minute's pause at 30x.
func NewScaled(epoch time.Time, speed float64) *Scaled {
	if speed <= 0 {
		speed = 1
	}
	return &Scaled{epoch: epoch, realStart: time.Now().Round(0), speed: speed}
}

// NewScaledFrom is the clock that read epoch at realStart: processes that agree on the three
// (a hardware-in-loop test and a daemon it starts) share one scaled time.
func NewScaledFrom(epoch, realStart time.Time, speed float64) *Scaled {
	s := NewScaled(epoch, speed)
	s.realStart = realStart.Round(0)
	return s
}

// Origin is what NewScaledFrom needs to make this clock again in another process.
func (s *Scaled) Origin() (epoch, realStart time.Time) { return s.epoch, s.realStart }

// Speed is the scale factor.
func (s *Scaled) Speed() float64 { return s.speed }

func (s *Scaled) Now() time.Time {
	return s.epoch.Add(time.Duration(float64(time.Since(s.realStart)) * s.speed))
}

func (s *Scaled) NewTimer(d time.Duration) Timer {
	ft := &funcTimer{c: make(chan time.Time, 1)}
	ft.t = time.AfterFunc(time.Duration(float64(d)/s.speed), func() { ft.fire(s.Now()) })
	return ft
}

// funcTimer delivers at most one tick, stamped by its clock, without a goroutine of its own.
type funcTimer struct {
	t *time.Timer
	c chan time.Time
}

func (f *funcTimer) fire(now time.Time) {
	select {
	case f.c <- now:
	default:
	}
}

func (f *funcTimer) C() <-chan time.Time { return f.c }
func (f *funcTimer) Stop() bool          { return f.t.Stop() }
