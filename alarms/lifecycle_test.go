package alarms

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

func TestLifecycle(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.quiet()
	r.one("panel", "smoke", "smoke", 1, sample.Good)
	r.advance(time.Second)
	r.one("panel", "smoke", "smoke", 0, sample.Good)
	id := "panel.smoke.smoke"
	if err := r.e.Ack(id, r.now); err != nil {
		t.Fatalf("ack of a known alarm: %v", err)
	}
	r.collect()
	if err := r.e.Ack("nope", r.now); !errors.Is(err, ErrUnknownAlarm) {
		t.Fatalf("ack of an unknown alarm: %v", err)
	}
	var path []string
	for _, ev := range r.events {
		if ev.Alarm.ID == id {
			path = append(path, fmt.Sprintf("%s:%v->%v", ev.Cause, ev.From, ev.Alarm.State))
		}
	}
	want := "activate:normal->unacknowledged clear:unacknowledged->rtn_unacknowledged ack:rtn_unacknowledged->normal"
	if err := r.e.Ack(id, r.now); !errors.Is(err, ErrIllegalTransition) {
		t.Errorf("ack of a normal alarm: %v", err)
	}
	if strings.Join(path, " ") != want {
		t.Fatalf("path %v\nwant %s", path, want)
	}
	for i := 1; i < len(r.events); i++ {
		if r.events[i].Seq <= r.events[i-1].Seq {
			t.Fatal("event seq not increasing")
		}
	}
}

func TestShelveHidesButStillCounts(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.quiet()
	r.one("panel", "smoke", "smoke", 1, sample.Good)
	id := "panel.smoke.smoke"
	if err := r.e.Shelve(id, r.now.Add(-time.Second), r.now); !errors.Is(err, ErrIllegalTransition) {
		t.Fatalf("shelve into the past: %v", err)
	}
	if err := r.e.Shelve(id, r.now.Add(10*time.Minute), r.now); err != nil {
		t.Fatal(err)
	}
	r.collect()
	if a := r.alarm(id); a.State != Shelved || a.ShelvedUntil == nil {
		t.Fatalf("after shelve: %+v", a)
	}
	if r.zone() != StageCritical {
		t.Fatalf("a shelved smoke alarm stopped counting: zone %v", r.zone())
	}
	if err := r.e.Shelve(id, r.now.Add(time.Hour), r.now); !errors.Is(err, ErrIllegalTransition) {
		t.Errorf("shelving a shelved alarm: %v", err)
	}
	// The shelf time runs out while the smoke is still there: the alarm comes back unacknowledged.
	for i := 0; i < 601; i++ {
		r.advance(time.Second)
		r.quiet()
		r.one("panel", "smoke", "smoke", 1, sample.Good)
		r.tick()
	}
	if a := r.alarm(id); a.State != Unacked || !a.Active {
		t.Fatalf("after the shelf expired: %+v", a)
	}
}

func TestOutOfServiceRemovesEvidence(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.quiet()
	r.one("panel", "smoke", "smoke", 1, sample.Good)
	id := "panel.smoke.smoke"
	if err := r.e.OutOfService(id, r.now); err != nil {
		t.Fatal(err)
	}
	hold := DefaultThresholds().StageHold
	for el := time.Duration(0); el <= hold+2*time.Second; el += time.Second {
		r.advance(time.Second)
		r.quiet()
		r.one("panel", "smoke", "smoke", 1, sample.Good) // the detector under maintenance still reads smoke
		r.rack("rack-1", -1, 0)
		r.tick()
	}
	if r.zone() != StageNormal {
		t.Fatalf("an out-of-service detector still stages the zone: %v", r.zone())
	}
	if err := r.e.ReturnToService(id, r.now); err != nil {
		t.Fatal(err)
	}
	r.one("panel", "smoke", "smoke", 1, sample.Good)
	if a := r.alarm(id); a.State != Unacked || r.zone() != StageCritical {
		t.Fatalf("back in service with smoke present: %+v, zone %v", a, r.zone())
	}
}

func TestCriticalAlarmsLatch(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.quiet()
	r.one("panel", "smoke", "smoke", 1, sample.Good)
	id := "panel.smoke.smoke"
	if err := r.e.Ack(id, r.now); err != nil {
		t.Fatal(err)
	}
	r.advance(time.Second)
	r.one("panel", "smoke", "smoke", 0, sample.Good)
	if a := r.alarm(id); a.State != RTNUnacked || !a.Latched {
		t.Fatalf("a critical alarm acked while active must still be acked after it clears: %+v", a)
	}
	if err := r.e.Ack(id, r.now); err != nil {
		t.Fatal(err)
	}
	if a := r.alarm(id); a.State != Normal || a.Latched {
		t.Fatalf("after the reset ack: %+v", a)
	}
	// A watch-level alarm does not latch: ack while active, clear, and it is normal.
	r.one("rack-1", "bms_alarm", "bms_alarm", 1, sample.Good)
	if err := r.e.Ack("rack-1.bms_alarm.bms_alarm", r.now); err != nil {
		t.Fatal(err)
	}
	r.one("rack-1", "bms_alarm", "bms_alarm", 0, sample.Good)
	if a := r.alarm("rack-1.bms_alarm.bms_alarm"); a.State != Normal {
		t.Fatalf("non-latching alarm: %+v", a)
	}
}

func TestBMSMaxSuppressedByItsOwnNTC(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 30; i++ {
		r.quiet()
		var ss []sample.Sample
		for m := 0; m < 8; m++ {
			v := 25.0
			if m == 2 {
				v = 56
			}
			ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
		}
		ss = append(ss, sample.Sample{Device: "rack-1", Point: "cell_temp_max", Role: "cell_temperature", Value: 56, Quality: sample.Good, At: r.now})
		r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
		r.tick()
		r.advance(time.Second)
	}
	if a := r.alarm("rack-1.cell_temp_max.temp_high"); a.State != SuppressedByDesign {
		t.Fatalf("the BMS max repeating module_temp_3: %+v", a)
	}
	if a := r.alarm("rack-1.module_temp_3.temp_high"); a.State != Unacked {
		t.Fatalf("the NTC's own alarm: %+v", a)
	}
}

func TestRestartKeepsAlarms(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.quiet()
	r.one("panel", "smoke", "smoke", 1, sample.Good) // active, unacked, latched
	r.one("gas", "co", "co_ppm", 80, sample.Good)
	if err := r.e.Ack("gas.co.co_high", r.now); err != nil {
		t.Fatal(err)
	}
	r.one("rack-1", "bms_alarm", "bms_alarm", 1, sample.Good)
	if err := r.e.Shelve("rack-1.bms_alarm.bms_alarm", r.now.Add(time.Hour), r.now); err != nil {
		t.Fatal(err)
	}
	snap := r.e.Snapshot()
	seq := r.e.book.seq

	// The daemon dies. A new engine restores the snapshot; the smoke is still there, the CO is gone.
	r2 := newRig(t)
	r2.now = r.now.Add(30 * time.Second)
	if err := r2.e.Restore(snap, r2.now); err != nil {
		t.Fatal(err)
	}
	if err := r2.e.Restore(snap, r2.now); err == nil {
		t.Fatal("restoring twice was accepted")
	}
	for i := 0; i < 60; i++ {
		r2.quiet()
		r2.one("panel", "smoke", "smoke", 1, sample.Good)
		r2.one("gas", "co", "co_ppm", 0, sample.Good)
		r2.tick()
		r2.advance(time.Second)
	}
	if a := r2.alarm("panel.smoke.smoke"); a.State != Unacked || !a.Active || !a.Latched {
		t.Errorf("smoke after restart: %+v", a)
	}
	if a := r2.alarm("gas.co.co_high"); a.State != Normal || a.Active {
		t.Errorf("CO gone after restart: %+v (acked before the crash, so clearing returns it to normal)", a)
	}
	if a := r2.alarm("rack-1.bms_alarm.bms_alarm"); a.State != Shelved {
		t.Errorf("shelved alarm after restart: %+v", a)
	}
	if r2.zone() != StageCritical {
		t.Errorf("zone after restart: %v", r2.zone())
	}
	for _, ev := range r2.events {
		if ev.Seq <= seq {
			t.Fatalf("event seq %d after restart is not past %d", ev.Seq, seq)
		}
	}
	// The smoke seen again after a restart is the same alarm, still active: not announced again.
	r3 := newRig(t)
	r3.now = r.now.Add(30 * time.Second)
	if err := r3.e.Restore(snap, r3.now); err != nil {
		t.Fatal(err)
	}
	r3.one("panel", "smoke", "smoke", 1, sample.Good)
	r3.tick()
	for _, ev := range r3.events {
		if ev.Alarm.ID == "panel.smoke.smoke" {
			t.Errorf("smoke after restart announced again: %s (%s)", ev.Cause, ev.Alarm.State)
		}
	}
	if a := r3.alarm("panel.smoke.smoke"); a.State != Unacked || !a.Active {
		t.Errorf("smoke after restart: %+v", a)
	}
}
