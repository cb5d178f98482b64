// Package alarms is Firebreak's detection core: detectors over samples, per-rack and per-zone
// risk stages with their evidence, and the ISA-18.2 alarm lifecycle. It is a pure, deterministic
// state machine in the style of etcd's raft: samples and ticks go in through Step and Tick, what
// changed comes out of Ready, and the caller performs it (publishes, persists) and calls Advance.
// It has no goroutines, no wall clock and no I/O: time enters only as sample timestamps and the
// explicit now of Tick.
//
// How a sample flows (one file a concern):
//
//	Step(batch)                                   engine.go: the Engine, its devices and points
//	 ├─ badPoints, sensorHealth, deviceHealth     health.go: readings that are no readings
//	 ├─ plausibility (steps, flapping)            temperature.go, with the temperature detectors
//	 ├─ applyRules                                rules.go: a site's own rules
//	 ├─ detect → temperature | level (gas, smoke, inputs.go: one role, one detector
//	 │           heat, fire panel, suppression, BMS)
//	 ├─ the device passes, in the table's order:  rack.go (stuck, peers, voltages), frozen.go
//	 │   each detector calls setCond             conditions.go: a condition raises, escalates or
//	 │                                             clears its alarm
//	 ├─ the book (activate, escalate, clear;      lifecycle.go: the ISA-18.2 states; cause.go
//	 │   operator causes; lifecycleTick)
//	 └─ restage → assess                          staging.go: rack and zone stages, independence
//	Tick(now): comm loss and no data (engine.go), then the lifecycle and staging as above.
//	Window maths (least-squares fit, sustained rise, median): window.go.
//	What each detector is (modality, roles, exclusion, zone gas, silence): detectors.go.
//
// Adding a detector (frozen.go was added this way):
//
//  1. detectors.go: a DetectorID constant and its row in detectorTable: its modality (which
//     decides independence), the roles it reads, whether a sensor's exclusion clears it,
//     whether it is gas in the room, whether it means its device is silent; a detector that
//     looks at a whole device after each batch names its pass there.
//  2. A file named for it with its logic, reporting through e.setCond(d, point, id, stage,
//     value, unit, text, now) with StageNormal to clear. A detector of one reading is called
//     from detect (inputs.go) for its role; a pass is called by Step from the table.
//  3. thresholds.go: its settings as Thresholds fields (yaml names with units), their defaults
//     in DefaultThresholds and their checks in Problems; `detection:` in the config reads them
//     with nothing else to change.
//  4. A script in testdata/ (what it raises and what it must not), then
//     go test ./alarms -run TestScripts -rewrite, and review the output like code.
//
// Staging needs no change: it reads the table. The daemon, replay, MQTT and Home Assistant need
// none either: an alarm is an alarm.
package alarms
