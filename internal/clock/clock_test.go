package clock

import (
	"context"
	"testing"
	"time"
)

func TestManualFiresInOrderOnlyWhenDue(t *testing.T) {
	t.Parallel()
	start := time.Date(2022, 10, 15, 15, 19, 0, 0, time.UTC)
	m := NewManual(start)
	a := m.NewTimer(2 * time.Second)
	b := m.NewTimer(1 * time.Second)
	m.Advance(500 * time.Millisecond)
	select {
	case <-a.C():
		t.Fatal("timer a fired early")
	case <-b.C():
		t.Fatal("timer b fired early")
	default:
	}
	m.Advance(time.Second)
	if got := <-b.C(); !got.Equal(start.Add(time.Second)) {
		t.Fatalf("b fired at %v", got)
	}
	if !a.Stop() {
		t.Fatal("a should still be pending")
	}
	m.Advance(time.Hour)
	select {
	case <-a.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if m.Waiters() != 0 {
		t.Fatalf("waiters = %d", m.Waiters())
	}
}

func TestScaledRunsFaster(t *testing.T) {
	t.Parallel()
	epoch := time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)
	s := NewScaled(epoch, 600)
	realStart := time.Now()
	if err := Sleep(context.Background(), s, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// 50 ms of real time; only a sleep that is not scaled takes the whole 30 s (no budget tighter
	// than that: a busy machine may wake the sleeper late).
	realTook := time.Since(realStart)
	if realTook >= 30*time.Second {
		t.Fatalf("30 s at speed 600 took %v of real time: not scaled", realTook)
	}
	if got := s.Now().Sub(epoch); got < 30*time.Second {
		t.Fatalf("scaled clock advanced only %v", got)
	}
}

// TestScaledSharesWallTime: a scaled clock and its copy in another process (NewScaledFrom of its
// Origin, which crosses a process boundary as wall time) count on the same clock. A clock that
// kept Go's monotonic reading would part from its copy by the length of any pause of the machine.
func TestScaledSharesWallTime(t *testing.T) {
	t.Parallel()
	s := NewScaled(time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC), 30)
	epoch, realStart := s.Origin()
	if realStart != realStart.Round(0) {
		t.Fatalf("the origin %v carries a monotonic reading its copies in other processes do not have", realStart)
	}
	c := NewScaledFrom(epoch, time.Now().Add(-time.Hour), 30)
	if _, rs := c.Origin(); rs != rs.Round(0) {
		t.Fatalf("NewScaledFrom kept the monotonic reading of %v", rs)
	}
}

func TestSleepHonoursContext(t *testing.T) {
	t.Parallel()
	m := NewManual(time.Unix(0, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, m, time.Hour); err == nil {
		t.Fatal("Sleep ignored a cancelled context")
	}
}
