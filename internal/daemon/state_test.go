package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/alarms"
)

func TestAlarmStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "alarms.json")
	if _, ok, err := readSnapshot(path); ok || err != nil {
		t.Fatalf("no file yet: ok %v err %v", ok, err)
	}
	want := alarms.Snapshot{Seq: 7, Alarms: []alarms.Alarm{{ID: "panel-1.smoke.smoke", State: alarms.Unacked, Active: true, Stage: 3, Latched: true, Since: time.Unix(0, 0).UTC()}}}
	if err := writeJSON(path, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := readSnapshot(path)
	if err != nil || !ok || got.Seq != 7 || len(got.Alarms) != 1 || got.Alarms[0].State != alarms.Unacked || !got.Alarms[0].Latched {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"seq": 7, "alarms": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readSnapshot(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("a torn file must be refused, naming it: %v", err)
	}
}
