package outbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/firebreak-dc/firebreak/internal/wire"
)

func msg(topic string, n int, state bool) wire.Message {
	return wire.Message{Topic: topic, QoS: 1, Retain: state || topic == "p/drain/z", State: state, Critical: true,
		Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
}

func payloads(t *testing.T, o *Outbox) []string {
	t.Helper()
	es, err := o.Peek(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Msg.Topic+string(e.Msg.Payload))
	}
	return out
}

func TestOutboxSurvivesReopenInOrderAndForgetsOnlyAcked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Put([]wire.Message{msg("p/events", 1, false), msg("p/alarm/a", 2, true), msg("p/drain/z", 3, false)}); err != nil {
		t.Fatal(err)
	}
	es, err := o.Peek(0, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("peek: %v %v", es, err)
	}
	if err := o.Done(es); err != nil {
		t.Fatal(err)
	}
	o.Close()

	o, err = Open(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got, want := fmt.Sprint(payloads(t, o)), `[p/alarm/a{"n":2} p/drain/z{"n":3}]`; got != want {
		t.Fatalf("after reopen: %s, want %s", got, want)
	}
	if o.Len() != 2 {
		t.Fatalf("Len %d, want 2", o.Len())
	}
	es, _ = o.Peek(0, 10)
	if es[0].Msg.QoS != 1 || !es[0].Msg.Retain || !es[0].Msg.State || !es[0].Msg.Critical {
		t.Fatalf("flags lost: %+v", es[0].Msg)
	}
	// Peek after an ID continues the window without repeating it.
	if more, _ := o.Peek(es[0].ID, 10); len(more) != 1 || more[0].ID != es[1].ID {
		t.Fatalf("peek after %d: %+v", es[0].ID, more)
	}
	if err := o.Done(es); err != nil {
		t.Fatal(err)
	}
	ret, err := o.Retained()
	if err != nil {
		t.Fatal(err)
	}
	// Only retained messages are remembered as state; the event was not retained.
	if len(ret) != 2 || ret[0].Topic != "p/alarm/a" || ret[1].Topic != "p/drain/z" {
		t.Fatalf("retained: %+v", ret)
	}
	if o.Len() != 0 {
		t.Fatalf("Len %d after all acked", o.Len())
	}
}

func TestOutboxBoundDropsObsoleteStateFirstThenOldest(t *testing.T) {
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	in := []wire.Message{msg("p/alarm/a", 1, true), msg("p/events", 2, false), msg("p/alarm/a", 3, true), msg("p/events", 4, false)}
	if d, err := o.Put(in); err != nil || d != 0 {
		t.Fatalf("put within bound: dropped %d, %v", d, err)
	}
	d, err := o.Put([]wire.Message{msg("p/events", 5, false)})
	if err != nil || d != 1 {
		t.Fatalf("over bound: dropped %d, %v", d, err)
	}
	if got, want := fmt.Sprint(payloads(t, o)), `[p/events{"n":2} p/alarm/a{"n":3} p/events{"n":4} p/events{"n":5}]`; got != want {
		t.Fatalf("got %s, want %s (the obsolete state goes first)", got, want)
	}
	d, err = o.Put([]wire.Message{msg("p/events", 6, false)})
	if err != nil || d != 1 {
		t.Fatalf("over bound again: dropped %d, %v", d, err)
	}
	if got, want := fmt.Sprint(payloads(t, o)), `[p/alarm/a{"n":3} p/events{"n":4} p/events{"n":5} p/events{"n":6}]`; got != want {
		t.Fatalf("got %s, want %s (then the oldest)", got, want)
	}
	if o.Len() != 4 {
		t.Fatalf("Len %d, want 4", o.Len())
	}
}

func TestNonceIsUsedOnceUntilItExpires(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ok, err := o.UseNonce("n1", now.Add(time.Minute), now); !ok || err != nil {
		t.Fatalf("first use: %v %v", ok, err)
	}
	o.Close()
	o, err = Open(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if ok, _ := o.UseNonce("n1", now.Add(time.Minute), now.Add(time.Second)); ok {
		t.Fatal("a replayed nonce was accepted after a restart")
	}
	if ok, _ := o.UseNonce("n1", now.Add(3*time.Minute), now.Add(2*time.Minute)); !ok {
		t.Fatal("an expired nonce was not forgotten")
	}
}

func BenchmarkPutDone(b *testing.B) {
	o, err := Open(filepath.Join(b.TempDir(), "outbox.db"), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	batch := []wire.Message{msg("p/alarm/a", 1, true), msg("p/events", 2, false)}
	for b.Loop() {
		if _, err := o.Put(batch); err != nil {
			b.Fatal(err)
		}
		es, _ := o.Peek(0, 10)
		if err := o.Done(es); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRecordChecksumCoversWhatIsStored: payloads with HTML characters, white space and unicode
// come back byte for byte as compact JSON, and a changed byte is found.
func TestRecordChecksumCoversWhatIsStored(t *testing.T) {
	t.Parallel()
	m := wire.Message{Topic: "p/alarm/a<b>", QoS: 1, Retain: true, State: true,
		Payload: json.RawMessage("{ \"text\": \"a < b & c > d\", \"n\": 1,\n \"u\": \"é\\u00e9\" }")}
	b, err := encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(b)
	if err != nil {
		t.Fatalf("decode: %v (%s)", err, b)
	}
	if want := `{"text":"a < b & c > d","n":1,"u":"é\u00e9"}`; string(got.Payload) != want || got.Topic != m.Topic {
		t.Fatalf("got %s %s", got.Topic, got.Payload)
	}
	bad := bytes.Replace(b, []byte(`"n":1`), []byte(`"n":7`), 1)
	if _, err := decode(bad); err == nil {
		t.Fatal("a changed digit was not found")
	}
}

// TestRestateForgetsEarlierStatesAndDeletesClear: a boot's Restate makes the table hold only
// what was published since (an earlier boot's state is never re-published on a reconnect), and an
// acknowledged empty retained message (MQTT's delete) forgets its topic, across a reopen too.
func TestRestateForgetsEarlierStatesAndDeletesClear(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	ack := func() {
		t.Helper()
		es, err := o.Peek(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Done(es); err != nil {
			t.Fatal(err)
		}
	}
	topics := func() string {
		t.Helper()
		return listRetained(t, o.Retained)
	}
	if _, err := o.Put([]wire.Message{msg("p/risk/z", 4, true), msg("p/dev/gone/availability", 1, true), msg("p/dev/kept/availability", 1, true)}); err != nil {
		t.Fatal(err)
	}
	ack()
	// The next boot: the zone restated at 0, the kept device restated, the gone one cleared.
	clearGone := wire.Message{Topic: "p/dev/gone/availability", QoS: 1, Retain: true, State: true, Critical: true}
	if _, err := o.Restate([]wire.Message{msg("p/risk/z", 0, true), msg("p/dev/kept/availability", 2, true), clearGone}); err != nil {
		t.Fatal(err)
	}
	if got := topics(); got != "[]" {
		t.Fatalf("retained right after Restate: %s, want none (nothing of this boot acknowledged yet)", got)
	}
	ack()
	want := `[p/dev/kept/availability{"n":2} p/risk/z{"n":0}]`
	if got := topics(); got != want {
		t.Fatalf("retained: %s, want %s", got, want)
	}
	o.Close()
	if o, err = Open(path, 100); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got := topics(); got != want {
		t.Fatalf("retained after reopen: %s, want %s", got, want)
	}
}

// A restate must see what is still queued: a reload a moment after the boot (or with the broker
// away) removed a device whose availability was queued and never acknowledged, and the restate
// cleared nothing, so the broker kept "offline, not polled yet" for a device no longer there.
func TestRetainedQueuedIsWhatTheBrokerWillHold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	list := func(queued bool) string {
		t.Helper()
		if queued {
			return listRetained(t, o.RetainedQueued)
		}
		return listRetained(t, o.Retained)
	}
	if _, err := o.Put([]wire.Message{msg("p/a", 1, true), msg("p/b", 1, true)}); err != nil {
		t.Fatal(err)
	}
	es, err := o.Peek(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Done(es); err != nil {
		t.Fatal(err)
	}
	clearB := wire.Message{Topic: "p/b", QoS: 1, Retain: true, State: true, Critical: true}
	event := wire.Message{Topic: "p/events", QoS: 1, Critical: true, Payload: json.RawMessage(`{"e":1}`)}
	if _, err := o.Put([]wire.Message{clearB, msg("p/c", 1, true), event, msg("p/c", 2, true)}); err != nil {
		t.Fatal(err)
	}
	acked, will := `[p/a{"n":1} p/b{"n":1}]`, `[p/a{"n":1} p/c{"n":2}]`
	for _, when := range []string{"queued", "after a reopen"} {
		if got := list(false); got != acked {
			t.Errorf("%s: Retained %s, want %s (acknowledged only)", when, got, acked)
		}
		if got := list(true); got != will {
			t.Errorf("%s: RetainedQueued %s, want %s", when, got, will)
		}
		o.Close()
		if o, err = Open(path, 100); err != nil {
			t.Fatal(err)
		}
	}
	defer o.Close()
}

// listRetained is what get returns, as topic+payload strings.
func listRetained(t *testing.T, get func() ([]wire.Message, error)) string {
	t.Helper()
	ret, err := get()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ret {
		out = append(out, m.Topic+string(m.Payload))
	}
	return fmt.Sprint(out)
}
