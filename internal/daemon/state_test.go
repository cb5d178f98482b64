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
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/durable"
	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/sample"
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

// TestSelfDischargeFile: the self-discharge history is read back as written; a missing file
// (none written yet) is no loss; one damaged in any way (a torn write under its checksum, or
// content that is not the format under a good checksum) is set aside and said, and the daemon
// starts without it.
func TestSelfDischargeFile(t *testing.T) {
	t.Parallel()
	now := time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)
	cfg := hiltest.DemoSite(t)
	for i := range cfg.Devices {
		if strings.HasPrefix(cfg.Devices[i].Name, "rack-") {
			cfg.Devices[i].Battery = &config.Battery{Chemistry: "nmc", CapacityAh: 68, OCVSlopeMVPerPct: 10}
		}
	}
	dir := t.TempDir()
	s := openStateDir(dir, zap.NewNop())
	pipe := NewPipeline(cfg, PipelineOptions{BootID: "t"})
	restoreSelfDischarge(s, pipe, now, zap.NewNop())
	if ps := s.problems(nil); len(ps) != 0 {
		t.Fatalf("no file yet is no loss: %+v", ps)
	}
	// A history of two hours of rack-01 at rest, as the engine writes it.
	b := feedRest(t, cfg, pipe, now)
	s.write(fileSelfDis, b)
	again := NewPipeline(cfg, PipelineOptions{BootID: "t2"})
	restoreSelfDischarge(s, again, now.Add(4*time.Hour), zap.NewNop())
	if ps := s.problems(nil); len(ps) != 0 {
		t.Fatalf("a good file was refused: %+v", ps)
	}
	if got := again.eng.SelfDischargeState(); string(got) != string(b) {
		t.Fatalf("round trip: %d bytes back for %d", len(got), len(b))
	}
	for _, tc := range []struct {
		name string
		raw  []byte // written as is (no checksum) when checked is false
		good bool   // under a good checksum
		want string
	}{
		{"torn", b[:len(b)/2], false, "is damaged"},
		{"another format", []byte(`{"hours": []}`), true, "not a Firebreak self-discharge file"},
		{"cut short", b[:len(b)-3], true, "it ends early"},
		{"a count no room has", append(append([]byte(nil), b[:5]...), 0xff, 0xff, 0xff, 0xff), true, "racks"},
		{"bytes after the end", append(append([]byte(nil), b...), 1, 2, 3), true, "3 bytes after the last rack"},
	} {
		dir := t.TempDir()
		s := openStateDir(dir, zap.NewNop())
		if tc.good {
			s.write(fileSelfDis, tc.raw)
		} else if err := os.WriteFile(filepath.Join(dir, fileSelfDis), tc.raw, 0o600); err != nil {
			t.Fatal(err)
		}
		p := NewPipeline(cfg, PipelineOptions{BootID: "t"})
		restoreSelfDischarge(s, p, now, zap.NewNop())
		ps := s.problems(nil)
		if len(ps) != 1 || ps[0].Source+"."+ps[0].Kind != "state.self-discharge.bin.lost" || !strings.Contains(ps[0].Text, tc.want) ||
			!strings.Contains(ps[0].Text, "kept as self-discharge.bin.damaged-") {
			t.Errorf("%s: problems %+v, want one naming %q and where the file went", tc.name, ps, tc.want)
		}
		if p.eng.SelfDischargeDirty() || len(p.eng.SelfDischargeState()) != len(sdEmpty) {
			t.Errorf("%s: a damaged history left something in the engine", tc.name)
		}
	}
}

// sdEmpty is the history of an engine with none: the header and no racks.
var sdEmpty = "FBSD\x01\x00\x00\x00\x00"

// feedRest steps rack-01 of cfg at rest (no current) for four hours from now, one reading a
// minute, and returns the engine's history.
func feedRest(t *testing.T, cfg *config.Config, p *Pipeline, now time.Time) []byte {
	t.Helper()
	var dev config.Device
	for _, d := range cfg.Devices {
		if d.Name == "rack-01" {
			dev = d
		}
	}
	for m := 0; m < 240; m++ {
		at := now.Add(time.Duration(m) * time.Minute)
		b := sample.Batch{Device: "rack-01", At: at}
		for i, pt := range cfg.Points(dev).Points {
			v := 24.0
			switch pt.Role {
			case sample.CellVoltage:
				v = 4.1 + 0.001*float64(i%5)
			case sample.StringCurrent:
				v = 0
			}
			b.Samples = append(b.Samples, sample.Sample{Point: pt.Name, Role: pt.Role, Value: v, Quality: sample.Good, At: at})
		}
		if _, err := p.Step(b); err != nil {
			t.Fatal(err)
		}
	}
	out := p.eng.SelfDischargeState()
	if len(out) <= len(sdEmpty) {
		t.Fatalf("four hours at rest left no history (%d bytes)", len(out))
	}
	return out
}
