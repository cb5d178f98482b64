package kpi

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/cutover"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

var t0 = time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)

func event(id string, c alarms.Cause, st alarms.AlarmState, at time.Time) wire.Message {
	return wire.Message{Event: &wire.EventPayload{AlarmEvent: alarms.AlarmEvent{Cause: c, At: at,
		Alarm: alarms.Alarm{ID: id, State: st, Active: c != alarms.CauseClear}}}}
}

func TestReport(t *testing.T) {
	s := New()
	s.Observe(t0, nil)
	// A flood: 12 new alarms within 5 minutes, from T+20m.
	for i := 0; i < 12; i++ {
		at := t0.Add(20*time.Minute + time.Duration(i)*25*time.Second)
		s.Observe(at, []wire.Message{event(fmt.Sprintf("rack-1.module_temp_%d.temp_high", i+1), alarms.CauseActivate, alarms.Unacked, at)})
	}
	// A chattering alarm: three activations within 50 s, cleared in between, acknowledged at the end.
	for i := 0; i < 3; i++ {
		at := t0.Add(40*time.Minute + time.Duration(i)*25*time.Second)
		s.Observe(at, []wire.Message{event("gas-1.offgas.offgas", alarms.CauseActivate, alarms.Unacked, at),
			event("gas-1.offgas.offgas", alarms.CauseClear, alarms.RTNUnacked, at.Add(10*time.Second))})
	}
	s.Observe(t0.Add(45*time.Minute), []wire.Message{event("gas-1.offgas.offgas", alarms.CauseAck, alarms.Normal, t0.Add(45*time.Minute))})
	// Raised and suppressed by design at once (a consequential alarm): never annunciated.
	at := t0.Add(47 * time.Minute)
	s.Observe(at, []wire.Message{event("rack-1.module_temp_1.rise", alarms.CauseActivate, alarms.Unacked, at),
		event("rack-1.module_temp_1.rise", alarms.CauseSuppress, alarms.SuppressedByDesign, at)})
	drainAt := t0.Add(50 * time.Minute)
	s.Observe(drainAt, []wire.Message{{Signal: &cutover.Signal{Action: cutover.Drain, IssuedAt: drainAt}}})
	s.Observe(t0.Add(time.Hour), nil)

	r := s.Report()
	if r.Span != time.Hour || r.Alarms != 15 || r.PerHour != 15 {
		t.Errorf("span %s, alarms %d, per hour %g; want 1h, 15, 15", r.Span, r.Alarms, r.PerHour)
	}
	if r.PeakPer10Min != 12 || !r.PeakAt.Equal(t0.Add(20*time.Minute)) {
		t.Errorf("peak %d from %s, want 12 from T+20m", r.PeakPer10Min, r.PeakAt.Sub(t0))
	}
	if r.Intervals != 6 || r.FloodShare != 1.0/6 {
		t.Errorf("flood in %g of %d intervals, want 1/6 of 6", r.FloodShare, r.Intervals)
	}
	if len(r.Frequent) != TopFrequent || r.Frequent[0] != (Count{"gas-1.offgas.offgas", 3}) {
		t.Errorf("most frequent %v", r.Frequent)
	}
	if strings.Join(r.Chattering, ",") != "gas-1.offgas.offgas" {
		t.Errorf("chattering %v", r.Chattering)
	}
	if len(r.Standing) != 12 || r.Standing[0] != "rack-1.module_temp_1.temp_high" {
		t.Errorf("standing %v: the 12 temperature alarms, not the acknowledged gas alarm nor the suppressed one", r.Standing)
	}
	if !r.FirstDrain.Equal(drainAt) || !r.FirstPrepare.IsZero() {
		t.Errorf("drain %v, prepare %v", r.FirstDrain, r.FirstPrepare)
	}
	if n := s.PeakBefore(t0.Add(21 * time.Minute)); n != 3 {
		t.Errorf("peak before T+21m: %d, want 3", n)
	}
	var b bytes.Buffer
	r.Write(&b, s.Start())
	for _, want := range []string{"new alarms             15, 15.0 per hour", "peak per 10 minutes    12 from T+20m0s", "time in flood          17 % of 6",
		"3  gas-1.offgas.offgas", "chattering             1", "standing at the end    12", "drain                  T+50m0s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, b.String())
		}
	}
}
