package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/durable"
	"github.com/firebreak-dc/firebreak/internal/outbox"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// The files of state_dir.
const (
	fileAlarms  = "alarms.json"
	filePlanner = "cutover.json"
	fileSeq     = "cutover.seq"
	fileOutbox  = "outbox.db"
	fileKey     = "signing.key"
	fileSelfDis = "self-discharge.bin"
)

// Problem kinds: the detector names of the alarms state.<file>.<kind>.
const (
	stateLost       = "lost"        // damaged or unreadable at start: set aside, started without it
	stateNotDurable = "not_durable" // writes fail (a full or read-only state_dir): kept in memory
)

// seqSlack is how far above the wall-clock floor a stored drain seq may be and still be taken
// as one this instance issued: a seq is a count of signals on top of at most a floor of the
// wall clock in microseconds, and no instance sends 10^12 signals.
const seqSlack = 1_000_000_000_000

// stateDir owns state_dir for the daemon: it loads each file leniently (a damaged one is set
// aside, renamed with the time and kept, and the daemon starts without it), writes state without
// ever failing the caller (a write that fails is remembered and tried again with the next
// change), and says what was lost or is not durable, for the alarms state.<file>.<kind>, /readyz
// and the metrics. A safety daemon degrades and says so; it never stops watching the room for
// a file.
type stateDir struct {
	dir string
	log *zap.Logger

	mu      sync.Mutex
	lost    map[string]string // file → what was lost at start, and where the file went
	failing map[string]string // file → why its last write failed
	signing string            // why there is no usable signing key ("" when there is)
	// publisher is why the publisher cannot read the outbox ("" while it can).
	publisher string
	// conflict, if set, says why the MQTT client id looks taken over ("" when it does not).
	conflict func() string
	// firstRun: state_dir held none of the files, which every start writes (the signing key
	// at the first). A file missing when others are there was lost.
	firstRun bool
}

func openStateDir(dir string, log *zap.Logger) *stateDir {
	s := &stateDir{dir: dir, log: log, lost: map[string]string{}, failing: map[string]string{}, firstRun: true}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.failed("state_dir", err)
	}
	for _, f := range []string{fileAlarms, filePlanner, fileSeq, fileOutbox} {
		if _, err := os.Stat(s.path(f)); !errors.Is(err, os.ErrNotExist) {
			s.firstRun = false
		}
	}
	return s
}

// missing says whether file was lost by deletion: it is not there, and this is not the first
// start. It records the loss.
func (s *stateDir) missing(file, what string, now time.Time) bool {
	if _, err := os.Stat(s.path(file)); s.firstRun || !errors.Is(err, os.ErrNotExist) {
		return false
	}
	s.lose(file, "is missing while state_dir holds the other files; "+what, now)
	return true
}

func (s *stateDir) path(file string) string { return filepath.Join(s.dir, file) }

// lose records that file was lost at start, moving it aside (never deleting it) when it exists.
func (s *stateDir) lose(file, why string, now time.Time) {
	text := fmt.Sprintf("%s in state_dir %s: %s", file, s.dir, why)
	if _, err := os.Stat(s.path(file)); err == nil {
		aside := fmt.Sprintf("%s.damaged-%s", s.path(file), now.UTC().Format("20060102T150405.000Z"))
		if err := os.Rename(s.path(file), aside); err != nil {
			text += fmt.Sprintf("; it could not be moved aside (%v) and stays where it is", err)
		} else {
			text += "; kept as " + filepath.Base(aside)
		}
	}
	s.mu.Lock()
	s.lost[file] = text
	s.mu.Unlock()
	s.log.Error("state lost; started without it", zap.String("file", file), zap.String("what", text))
}

// failed records a write that did not reach the disk (err nil: it did again).
func (s *stateDir) failed(file string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, was := s.failing[file]
	switch {
	case err != nil && !was:
		s.failing[file] = err.Error()
		s.log.Error("state is no longer durable: a write to state_dir failed; kept in memory and tried again with the next change",
			zap.String("file", file), zap.Error(err))
	case err != nil:
		s.failing[file] = err.Error()
	case was:
		delete(s.failing, file)
		s.log.Info("state is durable again", zap.String("file", file))
	}
}

// write writes a state file durably with its checksum, never failing the caller: see failed.
func (s *stateDir) write(file string, data []byte) {
	s.failed(file, durable.WriteChecked(s.path(file), data))
}

func (s *stateDir) writeJSON(file string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.failed(file, err)
		return
	}
	s.write(file, b)
}

// readJSON reads a state file into v; ok is false when there is none or it was lost.
func (s *stateDir) readJSON(file string, v any, now time.Time) bool {
	b, ok := s.read(file, true, now)
	if !ok {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		s.lose(file, "is damaged: "+err.Error(), now)
		return false
	}
	return true
}

// read reads a state file written by write; ok is false when there is none or it was lost. A
// file that every start writes (needed) is lost when missing; another may not be there yet.
func (s *stateDir) read(file string, needed bool, now time.Time) ([]byte, bool) {
	b, err := durable.ReadChecked(s.path(file))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if needed {
			s.missing(file, "started without it", now)
		}
		return nil, false
	case errors.Is(err, durable.ErrChecksum):
		s.lose(file, "is damaged: "+err.Error(), now)
		return nil, false
	case err != nil:
		s.lose(file, "cannot be read: "+err.Error(), now)
		return nil, false
	}
	return b, true
}

// seqStart returns the seq to continue drain signals from, and writes it as the new floor. A
// seq never goes back or wraps, whatever the file says: when the file is lost, damaged or holds
// more than this instance can have issued, the next seq comes from the wall clock
// (microseconds), above anything the instance can have sent before.
func (s *stateDir) seqStart(now time.Time) uint64 {
	floor := uint64(max(now.UnixMicro(), 0))
	b, err := durable.ReadChecked(s.path(fileSeq))
	var start uint64
	switch {
	case errors.Is(err, durable.ErrChecksum):
		s.lose(fileSeq, "is damaged: "+err.Error()+"; drain seq continues from the clock", now)
		start = floor
	case errors.Is(err, os.ErrNotExist):
		if s.missing(fileSeq, "drain seq continues from the clock", now) {
			start = floor
		}
	case err != nil:
		s.lose(fileSeq, "cannot be read: "+err.Error()+"; drain seq continues from the clock", now)
		start = floor
	default:
		n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		switch {
		case perr != nil:
			s.lose(fileSeq, fmt.Sprintf("is damaged (%.40q); drain seq continues from the clock", b), now)
			start = floor
		case n > floor+seqSlack:
			s.lose(fileSeq, fmt.Sprintf("holds %d, more than this instance can have issued; drain seq continues from the clock", n), now)
			start = floor
		default:
			start = n
		}
	}
	s.write(fileSeq, []byte(strconv.FormatUint(start, 10)))
	return start
}

// openOutbox opens outbox.db; a damaged one is set aside (the alarm says how many messages it
// showed), and one that cannot be opened at all (a read-only state_dir) is replaced by one in
// memory. Only another process holding the file is an error: two daemons on one state_dir.
func (s *stateDir) openOutbox(max int, now time.Time) (*outbox.Outbox, error) {
	s.missing(fileOutbox, "messages not yet delivered may have been lost; started with an empty outbox", now)
	ob, err := outbox.Open(s.path(fileOutbox), max)
	switch {
	case err == nil:
		return ob, nil
	case errors.Is(err, outbox.ErrLocked):
		return nil, err
	case errors.Is(err, outbox.ErrDamaged):
		what := "messages not yet delivered may have been lost (how many could not be read)"
		if n := outbox.Count(s.path(fileOutbox)); n >= 0 {
			what = fmt.Sprintf("%d messages not yet delivered may have been lost", n)
		}
		s.lose(fileOutbox, fmt.Sprintf("is damaged (%v); %s; started with an empty outbox", err, what), now)
		if ob, err = outbox.Open(s.path(fileOutbox), max); err == nil {
			return ob, nil
		}
	}
	s.failed(fileOutbox, err)
	return outbox.OpenMemory(max, err), nil
}

// publisherFailing records that the outbox fails the publisher (nil: it works again).
func (s *stateDir) publisherFailing(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publisher = ""
	if err != nil {
		s.publisher = err.Error()
	}
}

// noSigningKey records that drain signals cannot be signed with the key the consumers know.
func (s *stateDir) noSigningKey(why string) {
	s.mu.Lock()
	s.signing = why
	s.mu.Unlock()
}

// problem is one thing state_dir lost or cannot keep, as an alarm raises it.
type problem struct {
	Source, Kind string // alarm id Source.Kind
	Stage        alarms.Stage
	Text         string
	Ready        bool // the daemon is still ready with it (lost at start: it works without it)
}

// problems lists what is wrong now, sorted; ob's durability counts as outbox.db's.
func (s *stateDir) problems(ob *outbox.Outbox) []problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []problem
	for f, t := range s.lost {
		out = append(out, problem{"state." + f, stateLost, alarms.StageWatch, "lost at start: " + t, true})
	}
	failing := map[string]string{}
	for f, t := range s.failing {
		failing[f] = t
	}
	if ob != nil {
		if err := ob.Durable(); err != nil {
			failing[fileOutbox] = err.Error()
		}
	}
	for f, t := range failing {
		what := "its writes to state_dir fail"
		if f == fileOutbox {
			what = "undelivered messages are kept in memory only"
		}
		out = append(out, problem{"state." + f, stateNotDurable, alarms.StageWatch,
			fmt.Sprintf("%s is not durable: %s (%s); a restart now would lose it", f, what, t), false})
	}
	if s.conflict != nil {
		if why := s.conflict(); why != "" {
			out = append(out, problem{"daemon", "client_id_conflict", alarms.StageWatch, why, false})
		}
	}
	if s.publisher != "" {
		out = append(out, problem{"daemon", "publisher_failing", alarms.StageWatch,
			"the publisher cannot read the outbox (" + s.publisher + "); it tries again every second, and alarms and drain signals wait in the outbox", false})
	}
	if s.signing != "" {
		out = append(out, problem{"cutover", "signing_unavailable", alarms.StageCritical, s.signing, false})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source+out[i].Kind < out[j].Source+out[j].Kind })
	return out
}

// stateTick raises the alarms of what state_dir lost or cannot keep, clears those that no longer
// hold, and shows them on /readyz and /metrics.
func (l *engineLoop) stateTick(now time.Time) error {
	ps := l.st.problems(l.ob)
	cur := make(map[string]problem, len(ps))
	var msgs []wire.Message
	for _, p := range ps {
		id := p.Source + "." + p.Kind
		cur[id] = p
		if old, ok := l.stateRaised[id]; ok && old.Text == p.Text {
			continue
		}
		out, err := l.pipe.ProtocolAlarm(p.Source, p.Kind, p.Stage, p.Text, now)
		msgs = append(msgs, out...)
		if err != nil {
			return errors.Join(err, l.put(msgs))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(l.stateRaised)) {
		if p := l.stateRaised[id]; cur[id].Source == "" {
			out, err := l.pipe.ProtocolAlarm(p.Source, p.Kind, alarms.StageNormal, "", now)
			msgs = append(msgs, out...)
			if err != nil {
				return errors.Join(err, l.put(msgs))
			}
		}
	}
	if len(msgs) > 0 || len(cur) != len(l.stateRaised) {
		l.m.stateProblems(ps)
	}
	l.stateRaised = cur
	return l.put(msgs)
}
