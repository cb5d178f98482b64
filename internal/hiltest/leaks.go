package hiltest

import (
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// JudgeLeaks checks a run against the scenario's expect: which self_discharge alarms, by when,
// with what estimate. raisedAt says when an alarm was raised (from the scenario's start), its
// estimate in mA and its text; all is every self_discharge alarm the run raised.
func JudgeLeaks(t *testing.T, sc *sim.Scenario, raisedAt func(id string) (time.Duration, float64, string, bool), all []string) {
	t.Helper()
	want := map[string]bool{}
	for _, l := range sc.Expect.SelfDischarge {
		want[l.ID] = true
		at, leak, text, ok := raisedAt(l.ID)
		if !ok {
			t.Errorf("%s: %s was never raised", sc.Name, l.ID)
			continue
		}
		t.Logf("%s: %s raised at T+%s: %s", sc.Name, l.ID, at.Round(time.Minute), text)
		if l.LeakMA > 0 && (leak < l.LeakMA/2 || leak > l.LeakMA*2) {
			t.Errorf("%s: %s estimates %.1f mA; the leak is %g mA (a factor of 2 allowed)", sc.Name, l.ID, leak, l.LeakMA)
		}
	}
	for _, id := range all {
		if !want[id] {
			_, _, text, _ := raisedAt(id)
			t.Errorf("%s: %s raised, and the scenario has no leak there: %s", sc.Name, id, text)
		}
	}
	for _, a := range sc.Expect.Alarms {
		if !strings.HasSuffix(a.ID, "."+string(alarms.SelfDischarge)) {
			continue
		}
		if at, _, _, ok := raisedAt(a.ID); ok && at > a.By {
			t.Errorf("%s: %s raised at T+%s, the scenario expects it by T+%s", sc.Name, a.ID, at.Round(time.Minute), a.By)
		}
	}
}
