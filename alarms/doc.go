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
//	 ├─ stuck, peers, voltages                    rack.go: passes over a whole rack
//	 │   each detector calls setCond             conditions.go: a condition raises, escalates or
//	 │                                             clears its alarm
//	 ├─ the book (activate, escalate, clear;      lifecycle.go: the ISA-18.2 states
//	 │   operator causes; lifecycleTick)
//	 └─ restage → assess                          staging.go: rack and zone stages, independence
//	Tick(now): comm loss and no data (engine.go), then the lifecycle and staging as above.
//	Window maths (least-squares fit, sustained rise, median): window.go.
//
// A new detector goes where its input is: a role that reads one value at a time into detect
// (inputs.go, or temperature.go for temperatures), a pass that compares the points of a rack into
// rack.go. It reports through setCond with a modality and a stage; staging decides what that
// stage means for its rack and zone, and the lifecycle what an operator sees. Thresholds are in
// thresholds.go, with their defaults and checks.
package alarms
