// Package floattest holds the replay tests of the days-long float scenarios (configs/scenarios/
// float-*): the simulator records days of float as a perfect poller would read them, and the
// daemon's pipeline replays them, for the self_discharge detector. They live apart from
// internal/daemon, the suite's long pole, so that their minutes of CPU run beside the other
// packages instead of at its end. The package has no code of its own.
package floattest
