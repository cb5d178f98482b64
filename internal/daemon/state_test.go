package daemon

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/durable"
)

func TestAlarmStateFile(t *testing.T) {
	t.Parallel()
	now := time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	s := openStateDir(dir, zap.NewNop())
	var got alarms.Snapshot
	if s.readJSON(fileAlarms, &got, now) || len(s.problems(nil)) != 0 {
		t.Fatalf("no file yet: %v", s.problems(nil))
	}
	want := alarms.Snapshot{Seq: 7, Alarms: []alarms.Alarm{{ID: "panel-1.smoke.smoke", State: alarms.Unacked, Active: true, Stage: 3, Latched: true, Since: time.Unix(0, 0).UTC()}}}
	s.writeJSON(fileAlarms, want)
	if !s.readJSON(fileAlarms, &got, now) || got.Seq != 7 || len(got.Alarms) != 1 || got.Alarms[0].State != alarms.Unacked || !got.Alarms[0].Latched {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, fileAlarms+".tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	torn := []byte(`{"seq": 7, "alarms": [`)
	if err := os.WriteFile(filepath.Join(dir, fileAlarms), torn, 0o600); err != nil {
		t.Fatal(err)
	}
	if s.readJSON(fileAlarms, &got, now) {
		t.Fatal("a torn file was read")
	}
	ps := s.problems(nil)
	if len(ps) != 1 || ps[0].Source+"."+ps[0].Kind != "state.alarms.json.lost" || !strings.Contains(ps[0].Text, "kept as alarms.json.damaged-20221015T150000.000Z") {
		t.Fatalf("problems: %+v", ps)
	}
	if kept, err := os.ReadFile(filepath.Join(dir, "alarms.json.damaged-20221015T150000.000Z")); err != nil || string(kept) != string(torn) {
		t.Fatalf("the damaged file must be kept as it was: %q %v", kept, err)
	}
}

// TestSeqNeverGoesBack: whatever cutover.seq holds, the next drain seq is above anything this
// instance can have issued, and it is written back as the new floor.
func TestSeqNeverGoesBack(t *testing.T) {
	t.Parallel()
	now := time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)
	floor := uint64(now.UnixMicro())
	for _, tc := range []struct {
		name, file string // file "-" for none
		other      bool   // state_dir holds other state (not a first start)
		want       uint64
		lost       bool
	}{
		{"first start", "-", false, 0, false},
		{"a count", "41", true, 41, false},
		{"a count after a clock floor", "1665846000000123", true, 1665846000000123, false},
		{"deleted", "-", true, floor, true},
		{"empty", "", true, floor, true},
		{"text", "hello", true, floor, true},
		{"negative", "-5", true, floor, true},
		{"max uint64", "18446744073709551615", true, floor, true},
		{"far above the clock", "9000000000000000", true, floor, true},
		{"a digit changed under its checksum", "42\n#firebreak crc32c 7a2a4d60\n", true, floor, true},
	} {
		dir := t.TempDir()
		if tc.other {
			if err := os.WriteFile(filepath.Join(dir, fileOutbox), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if tc.file != "-" {
			if err := os.WriteFile(filepath.Join(dir, fileSeq), []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s := openStateDir(dir, zap.NewNop())
		got := s.seqStart(now)
		if got != tc.want || (len(s.problems(nil)) > 0) != tc.lost {
			t.Errorf("%s: seq %d, problems %+v; want %d, lost %v", tc.name, got, s.problems(nil), tc.want, tc.lost)
		}
		if b, err := durable.ReadChecked(filepath.Join(dir, fileSeq)); err != nil || string(b) != strconvU(tc.want) {
			t.Errorf("%s: the file holds %q after start, want the floor %d", tc.name, b, tc.want)
		}
	}
}

func strconvU(n uint64) string { return strconv.FormatUint(n, 10) }
