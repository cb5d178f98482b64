package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/testenv"
	"github.com/firebreak-dc/firebreak/internal/wire"
)

// filled writes an outbox with n queued messages and returns its path.
func filled(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []wire.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, msg(fmt.Sprintf("p/alarm/a%d", i), i, true))
	}
	if _, err := o.Put(msgs); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDamagedFileIsRefusedNotPanicked: every kind of damage to outbox.db is ErrDamaged from
// Open (issue 21: one damaged page made bbolt panic at every start, a crash loop), and a sound
// file with one flipped byte in a message is found at open, not later by the publisher.
func TestDamagedFileIsRefusedNotPanicked(t *testing.T) {
	t.Parallel()
	damage := map[string]func(b []byte) []byte{
		"truncated to 0":    func(b []byte) []byte { return nil },
		"truncated to half": func(b []byte) []byte { return b[:len(b)/2] },
		"random bytes":      func(b []byte) []byte { r := make([]byte, len(b)); rand.New(rand.NewSource(1)).Read(r); return r },
		"plain text":        func(b []byte) []byte { return []byte("this is not a database\n") },
		"page header flipped": func(b []byte) []byte {
			// the page after the two meta pages and the freelist: its id no longer matches
			b[3*4096] ^= 0xff
			b[3*4096+1] ^= 0x5a
			return b
		},
		"meta pages zeroed": func(b []byte) []byte { copy(b, make([]byte, 2*4096)); return b },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filled(t, 200)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f(b), 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := Open(path, 100)
			if err == nil {
				// Some damage leaves a file bbolt can read: then every message in it decodes.
				defer o.Close()
				if _, perr := o.Peek(0, 1000); perr != nil {
					t.Fatalf("opened, but the publisher would fail: %v", perr)
				}
				return
			}
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open: %v, want ErrDamaged", err)
			}
			t.Logf("%s: %v; count %d", name, err, Count(path))
		})
	}
	// A message whose bytes no longer decode: bbolt's structure is sound, the value is not.
	path := filled(t, 20)
	b, _ := os.ReadFile(path)
	i := bytes.Index(b, []byte(`"t":"p/alarm/a7"`))
	if i < 0 {
		t.Fatal("stored message not found in the file")
	}
	b[i] = '!'
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, 100); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "corrupt entry") {
		t.Fatalf("a message that does not decode: %v", err)
	}
	if n := Count(path); n != 20 {
		t.Errorf("Count of the damaged file = %d, want 20", n)
	}
}

// TestFullAndReadOnlyStateDir: when the file stops taking writes (a full filesystem, then one
// remounted read-only), Put never fails and nothing is lost: messages are kept in memory,
// delivered in order, Durable says why, and once the filesystem has room again the file takes
// everything back and a reopen finds what was not acknowledged.
func TestFullAndReadOnlyStateDir(t *testing.T) {
	dir := testenv.Tmpfs(t, "2m")
	path := filepath.Join(dir, "outbox.db")
	o, err := Open(path, 100000)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := o.Put([]wire.Message{msg("p/events", 0, false)}); err != nil || o.Durable() != nil {
		t.Fatalf("first put: %v %v", err, o.Durable())
	}
	ballast := filepath.Join(dir, "ballast")
	_ = os.WriteFile(ballast, make([]byte, 4<<20), 0o600) // fills the filesystem (the write fails part way)
	big := strings.Repeat("x", 2000)
	for i := 1; i <= 40; i++ {
		m := msg("p/events", i, false)
		m.Payload = []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, big))
		if _, err := o.Put([]wire.Message{m}); err != nil {
			t.Fatalf("put %d on a full filesystem: %v", i, err)
		}
	}
	if o.Durable() == nil {
		t.Fatal("Durable says the file took 80 KB on a full filesystem")
	}
	t.Logf("full: %v", o.Durable())
	es, err := o.Peek(0, 1000)
	if err != nil || len(es) != 41 {
		t.Fatalf("peek on a full filesystem: %d entries, %v", len(es), err)
	}
	for i, e := range es {
		if !bytes.HasPrefix(e.Msg.Payload, []byte(fmt.Sprintf(`{"n":%d`, i))) {
			t.Fatalf("entry %d out of order: %.20s", i, e.Msg.Payload)
		}
	}
	if err := o.Done(es[:5]); err != nil || o.Len() != 36 {
		t.Fatalf("done on a full filesystem: %v, len %d", err, o.Len())
	}
	now := time.Date(2022, 10, 15, 15, 0, 0, 0, time.UTC)
	if fresh, err := o.UseNonce("alice/n1", now.Add(time.Minute), now); !fresh || err != nil {
		t.Fatalf("a new nonce on a full filesystem: %v %v", fresh, err)
	}
	if fresh, _ := o.UseNonce("alice/n1", now.Add(time.Minute), now); fresh {
		t.Fatal("a replayed nonce was taken while the file is full")
	}
	// Room again: the next operation writes everything the file missed.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Put([]wire.Message{msg("p/events", 41, false)}); err != nil || o.Durable() != nil {
		t.Fatalf("put with room again: %v, durable %v", err, o.Durable())
	}
	o.Close()
	o2, err := Open(path, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if n := o2.Len(); n != 37 {
		t.Fatalf("after reopen %d queued, want 37 (42 put, 5 acknowledged)", n)
	}
	o2.Close()

	// Read-only: the same, and Open of a new file there falls back to memory at the caller.
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	if _, err := Open(filepath.Join(dir, "new.db"), 100); err == nil || errors.Is(err, ErrDamaged) {
		t.Fatalf("open a new file on a read-only filesystem: %v, want an error that is not ErrDamaged", err)
	}
	m := OpenMemory(100, errors.New("read-only"))
	if _, err := m.Put([]wire.Message{msg("p/events", 1, false), msg("p/alarm/a", 2, true)}); err != nil || m.Len() != 2 || m.Durable() == nil {
		t.Fatalf("memory outbox: %v len %d durable %v", err, m.Len(), m.Durable())
	}
	es, _ = m.Peek(0, 10)
	if err := m.Done(es); err != nil || m.Len() != 0 {
		t.Fatal(err)
	}
	if ret, err := m.Retained(); err != nil || len(ret) != 1 || ret[0].Topic != "p/alarm/a" {
		t.Fatalf("memory retained: %v %v", ret, err)
	}
}
