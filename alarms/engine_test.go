package alarms

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/sample"
)

var t0 = time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)

func topo() Topology {
	return Topology{
		Zones: []string{"z"},
		Devices: []DeviceInfo{
			{Name: "rack-1", Zone: "z", Interval: time.Second},
			{Name: "rack-2", Zone: "z", Interval: time.Second},
			{Name: "gas", Zone: "z", Interval: time.Second},
			{Name: "panel", Zone: "z", Interval: time.Second},
		},
	}
}

// rig feeds a scripted room to an engine, one second per step, collecting everything it emits.
type rig struct {
	t      *testing.T
	e      *Engine
	now    time.Time
	risk   []RiskChange
	events []AlarmEvent
}

func newRig(t *testing.T) *rig {
	return &rig{t: t, e: New(topo(), DefaultThresholds()), now: t0}
}

// rack sends one poll of a rack: 8 module temperatures, the hot one (index hot) at hotC.
func (r *rig) rack(name string, hot int, hotC float64) {
	var ss []sample.Sample
	for i := 0; i < 8; i++ {
		v := 25.0
		if i == hot {
			v = hotC
		}
		ss = append(ss, sample.Sample{Device: name, Point: fmt.Sprintf("module_temp_%d", i+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
	}
	r.step(sample.Batch{Device: name, At: r.now, Samples: ss})
}

func (r *rig) one(dev, point string, role sample.Role, v float64, q sample.Quality) {
	r.step(sample.Batch{Device: dev, At: r.now, Samples: []sample.Sample{{Device: dev, Point: point, Role: role, Value: v, Quality: q, At: r.now}}})
}

func (r *rig) step(b sample.Batch) {
	r.e.Step(b)
	r.collect()
}

func (r *rig) tick() {
	r.e.Tick(r.now)
	r.collect()
}

func (r *rig) collect() {
	rd := r.e.Ready()
	r.risk = append(r.risk, rd.Risk...)
	r.events = append(r.events, rd.Events...)
	r.e.Advance()
}

func (r *rig) advance(d time.Duration) { r.now = r.now.Add(d) }

// quiet keeps the other devices answering so that comm loss does not muddy a test.
func (r *rig) quiet() {
	r.rack("rack-2", -1, 0)
	r.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
	r.one("panel", "smoke", "smoke", 0, sample.Good)
}

func (r *rig) zone() Stage { return r.e.ZoneStage("z") }

func TestOneHotSensorNeverDrains(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 600; i++ { // ten minutes at a flat 58 °C: hot, but not rising
		r.quiet()
		r.rack("rack-1", 2, 58)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("zone stage %v, want warning: one sensor, however hot, is not confirmation", r.zone())
	}
}

func TestHotAndRisingIsConfirmed(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	temp := 50.0
	for i := 0; i < 600 && r.zone() < StageCritical; i++ {
		r.quiet()
		r.rack("rack-1", 2, temp)
		r.tick()
		temp += 2.0 / 60 // 2 °C/min
		r.advance(time.Second)
	}
	if r.zone() != StageCritical {
		t.Fatalf("zone stage %v at %.1f °C", r.zone(), temp)
	}
	if temp < 60 || temp > 61 {
		t.Errorf("critical at %.1f °C, want just past 60", temp)
	}
	last := r.risk[len(r.risk)-1]
	if last.To != StageCritical || len(last.Evidence) == 0 || !strings.Contains(last.Reason, "rising") {
		t.Errorf("critical without its evidence: %+v", last)
	}
}

func TestTwoModalitiesConfirm(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 30; i++ {
		r.quiet()
		r.rack("rack-1", 2, 56)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("before gas: %v", r.zone())
	}
	r.rack("rack-2", -1, 0)
	r.rack("rack-1", 2, 56)
	r.one("gas", "offgas", "offgas_ppm", 25, sample.Good)
	if r.zone() != StageCritical {
		t.Fatalf("hot module + off-gas: zone %v, want critical", r.zone())
	}
	if r.e.racks["rack-1"].stage != StageWarning {
		t.Errorf("rack-1 stage %v: the room's gas is zone evidence, not the rack's", r.e.racks["rack-1"].stage)
	}
}

func TestSpikeIsNotRunaway(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for _, v := range []float64{25, 25, 25, 25, 90, 25, 25, 25, 25, 25} {
		r.quiet()
		r.rack("rack-1", 2, v)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() >= StageCritical {
		t.Fatalf("a one-sample spike staged the zone to %v", r.zone())
	}
}

func TestSustainedRiseIsRunaway(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	v := 70.0
	for i := 0; i < 8; i++ {
		r.quiet()
		r.rack("rack-1", 2, v)
		r.tick()
		v += 5
		r.advance(time.Second)
	}
	if r.zone() != StageFire {
		t.Fatalf("5 °C/s for 8 s: zone %v, want fire", r.zone())
	}
}

func TestFirePanelSignals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role string
		want Stage
	}{{"smoke", StageCritical}, {"suppression_released", StageCritical}, {"fire_alarm", StageFire}} {
		r := newRig(t)
		r.quiet()
		r.one("panel", tc.role, sample.Role(tc.role), 1, sample.Good)
		if r.zone() != tc.want {
			t.Errorf("%s: zone %v, want %v", tc.role, r.zone(), tc.want)
		}
	}
}

func TestStageFallsOnlyAfterHold(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.quiet()
	r.one("panel", "smoke", "smoke", 1, sample.Good)
	if r.zone() != StageCritical {
		t.Fatal("smoke did not stage")
	}
	hold := DefaultThresholds().StageHold
	fellAt, fell := time.Duration(0), false
	for el := time.Duration(0); el <= hold+5*time.Second; el += time.Second {
		r.advance(time.Second)
		r.quiet()
		r.rack("rack-1", -1, 0)
		r.tick()
		if r.zone() == StageNormal && !fell {
			fellAt, fell = el, true
		}
	}
	if !fell || fellAt < hold-2*time.Second || fellAt > hold+2*time.Second {
		t.Fatalf("fell after %v, want after the hold of %v", fellAt, hold)
	}
}

func TestSilentBMSWithGasIsCritical(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 10; i++ {
		r.rack("rack-2", -1, 0)
		r.one("panel", "smoke", "smoke", 0, sample.Good)
		r.one("gas", "offgas", "offgas_ppm", 30, sample.Good) // rack-1 says nothing at all
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageCritical {
		t.Fatalf("zone %v, want critical", r.zone())
	}
	if !strings.Contains(r.risk[len(r.risk)-1].Reason, "no data from rack-1") {
		t.Errorf("reason does not name the silent rack: %s", r.risk[len(r.risk)-1].Reason)
	}
}

func TestFailedPollsAreNamedAsSuch(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 6; i++ {
		r.quiet()
		r.rack("rack-1", -1, 0)
		r.step(sample.Batch{Device: "rack-1", At: r.now, Err: errors.New("i/o timeout")})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageNormal {
		t.Fatalf("a rack that answers between failures staged %v", r.zone())
	}
	for i := 0; i < 6; i++ {
		r.quiet()
		r.step(sample.Batch{Device: "rack-1", At: r.now, Err: errors.New("i/o timeout")})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWatch || !strings.Contains(r.risk[len(r.risk)-1].Reason, "rack-1 has not answered for 4s: i/o timeout") {
		t.Fatalf("zone %v, reason %q", r.zone(), r.risk[len(r.risk)-1].Reason)
	}
}

func TestBadSensorIsAFaultNotAFire(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 20; i++ {
		r.quiet()
		r.one("rack-1", "cell_temp_max", "cell_temperature", 6553.5, sample.OutOfRange)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWatch {
		t.Fatalf("zone %v, want watch", r.zone())
	}
	found := false
	for _, a := range r.e.Alarms() {
		found = found || a.Detector == "sensor_fault"
	}
	if !found {
		t.Fatal("no sensor_fault alarm")
	}
}

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

// racksAt sends one poll of both racks with every module at c (plus a little per-sensor spread).
func (r *rig) racksAt(c float64) {
	for _, name := range []string{"rack-1", "rack-2"} {
		var ss []sample.Sample
		for i := 0; i < 8; i++ {
			ss = append(ss, sample.Sample{Device: name, Point: fmt.Sprintf("module_temp_%d", i+1), Role: "module_temperature",
				Value: c + 0.1*float64(i%3), Quality: sample.Good, At: r.now})
		}
		r.step(sample.Batch{Device: name, At: r.now, Samples: ss})
	}
}

func TestUniformWarmingIsOneSignal(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := 40.0
	for i := 0; i < 3600; i++ { // an hour: every sensor of both racks from 40 to 58 °C together
		r.racksAt(c)
		r.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
		r.one("panel", "smoke", "smoke", 0, sample.Good)
		r.tick()
		c += 18.0 / 3600
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("uniform warming to 58 °C: zone %v, want warning (sixteen warm sensors are one signal)", r.zone())
	}
	// Gas is a second, independent signal.
	r.racksAt(c)
	r.one("gas", "offgas", "offgas_ppm", 30, sample.Good)
	if r.zone() != StageCritical {
		t.Fatalf("uniform warmth plus off-gas: zone %v, want critical", r.zone())
	}
}

func TestHotCellInAWarmRoomStillStandsOut(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 120; i++ {
		r.quiet()
		// rack-1: one module at 57 °C while its peers sit at 25.
		r.rack("rack-1", 4, 57)
		r.tick()
		r.advance(time.Second)
	}
	got := r.e.conds["rack-1.module_temp_5.temp_high"]
	if got == nil || strings.HasPrefix(got.source, "uniform:") {
		t.Fatalf("a cell 32 °C above its peers was taken for uniform warming: %+v", got)
	}
}

func TestFlappingSensorIsExcluded(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 180; i++ { // a loose connector: 25 ↔ 58 °C every 5 s for 3 minutes
		v := 25.0
		if (i/5)%2 == 1 {
			v = 58
		}
		r.quiet()
		r.rack("rack-1", 6, v)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() > StageWatch {
		t.Fatalf("a flapping sensor staged the zone to %v", r.zone())
	}
	found := false
	for _, a := range r.e.Alarms() {
		found = found || a.ID == "rack-1.module_temp_7.flapping"
	}
	if !found {
		t.Fatalf("no flapping alarm among %+v", r.e.Alarms())
	}
}

func TestSteadyQuantisedSensorIsNotStuck(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 1800; i++ { // half an hour of a steady room: one sensor never leaves its bin
		var ss, other []sample.Sample
		for m := 0; m < 8; m++ {
			v := 23 + 0.1*float64((i+m)%3-1)
			// rack-2 is live too: its readings wander in their bins (a rack whose every reading
			// stood still while rack-1's moved would be frozen: testdata/frozen.txt)
			other = append(other, sample.Sample{Device: "rack-2", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
			if m == 2 {
				v = 23
			}
			ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
		}
		r.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
		r.one("panel", "smoke", "smoke", 0, sample.Good)
		r.step(sample.Batch{Device: "rack-2", At: r.now, Samples: other})
		r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageNormal {
		t.Fatalf("a steady sensor in a steady room staged the zone to %v: %+v", r.zone(), r.e.Alarms())
	}
}

func TestStuckSensorIsRaised(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 400; i++ {
		var ss []sample.Sample
		for m := 0; m < 8; m++ {
			v := 25 + 0.1*float64(i%4) // peers wander with noise, and warm 3 °C over the run
			v += 3 * float64(i) / 400
			if m == 3 {
				v = 25.3 // frozen
			}
			ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: v, Quality: sample.Good, At: r.now})
		}
		r.quiet()
		r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
		r.tick()
		r.advance(time.Second)
	}
	var stuck *Alarm
	for _, a := range r.e.Alarms() {
		if a.ID == "rack-1.module_temp_4.stuck" {
			stuck = &a
		}
	}
	if stuck == nil || !stuck.Active {
		t.Fatalf("stuck sensor not raised: %+v", r.e.Alarms())
	}
	if r.zone() != StageWatch {
		t.Fatalf("zone %v, want watch", r.zone())
	}
}

func (r *rig) alarm(id string) Alarm {
	r.t.Helper()
	a := r.e.book.alarms[id]
	if a == nil {
		r.t.Fatalf("no alarm %s", id)
	}
	return *a
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

func TestLivePollerLateIsNotSilence(t *testing.T) {
	t.Parallel()
	live := &rig{t: t, e: New(topo(), DefaultThresholds(), LivePoller()), now: t0}
	for i := 0; i < 20; i++ { // rack-1 sends nothing for 20 s: the poller is behind, not the BMS silent
		live.rack("rack-2", -1, 0)
		live.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
		live.one("panel", "smoke", "smoke", 0, sample.Good)
		live.tick()
		live.advance(time.Second)
	}
	if live.zone() != StageNormal {
		t.Fatalf("a late poller read as a silent BMS: zone %v", live.zone())
	}
	for i := 0; i < 20; i++ { // past the grace it is silence after all
		live.rack("rack-2", -1, 0)
		live.one("gas", "offgas", "offgas_ppm", 0.4, sample.Good)
		live.one("panel", "smoke", "smoke", 0, sample.Good)
		live.tick()
		live.advance(time.Second)
	}
	if live.zone() != StageWatch {
		t.Fatalf("no data for 40 s: zone %v, want watch", live.zone())
	}
}

func TestSiteRules(t *testing.T) {
	t.Parallel()
	limit, rate := 150.0, 2.0
	tp := topo()
	tp.Rules = []Rule{
		{Name: "hot-string", Device: "rack-1", Point: "string_power", Above: &limit, For: 30 * time.Second, Stage: StageWarning},
		{Name: "fast-soc", Device: "rack-2", Point: "soc", RatePerMin: &rate, Stage: StageWatch},
	}
	r := &rig{t: t, e: New(tp, DefaultThresholds()), now: t0}
	power := func(v float64) {
		r.one("rack-1", "string_power", "", v, sample.Good) // a point with no role: rules still see it
	}
	for i := 0; i < 20; i++ {
		r.quiet()
		power(160)
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageNormal {
		t.Fatalf("rule fired before its 30 s: zone %v", r.zone())
	}
	for i := 0; i < 15; i++ {
		r.quiet()
		power(160)
		r.tick()
		r.advance(time.Second)
	}
	if a := r.alarm("rack-1.string_power.rule:hot-string"); a.State != Unacked || a.Stage != StageWarning {
		t.Fatalf("rule alarm: %+v", a)
	}
	if r.zone() != StageWarning {
		t.Fatalf("zone %v, want warning from the rule", r.zone())
	}
	power(100)
	if a := r.alarm("rack-1.string_power.rule:hot-string"); a.Active {
		t.Fatalf("rule did not clear: %+v", a)
	}
	soc := 50.0
	for i := 0; i < 10; i++ {
		r.one("rack-2", "soc", "", soc, sample.Good)
		soc += 0.1 // 6 %/min
		r.advance(time.Second)
	}
	if a := r.alarm("rack-2.soc.rule:fast-soc"); !a.Active {
		t.Fatalf("rate rule: %+v", a)
	}
}

func TestWidelySpreadRackDoesNotSingleOutItsWarmest(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 60; i++ {
		var ss []sample.Sample
		// A rack with a strong top-to-bottom gradient (airflow): 22 … 36 °C. The top module is 7 °C
		// above the median, but no more unusual than the rest of the spread.
		for m := 0; m < 8; m++ {
			ss = append(ss, sample.Sample{Device: "rack-1", Point: fmt.Sprintf("module_temp_%d", m+1), Role: "module_temperature", Value: 22 + 2*float64(m), Quality: sample.Good, At: r.now})
		}
		r.quiet()
		r.step(sample.Batch{Device: "rack-1", At: r.now, Samples: ss})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageNormal {
		t.Fatalf("a rack's airflow gradient was taken for a hot module: zone %v, %+v", r.zone(), r.e.Alarms())
	}
}

func TestWarningThenSilenceIsCritical(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 30; i++ {
		r.quiet()
		r.rack("rack-1", 2, 56) // warning
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageWarning {
		t.Fatalf("before the silence: %v", r.zone())
	}
	for i := 0; i < 10; i++ { // the BMS stops answering
		r.quiet()
		r.step(sample.Batch{Device: "rack-1", At: r.now, Err: errors.New("modbus exception 11")})
		r.tick()
		r.advance(time.Second)
	}
	if r.zone() != StageCritical {
		t.Fatalf("a warning rack gone silent: zone %v, want critical", r.zone())
	}
}
