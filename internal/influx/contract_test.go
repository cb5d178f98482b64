package influx_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/firebreak-dc/firebreak/internal/hiltest"
	"github.com/firebreak-dc/firebreak/internal/influx"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// v2 answers a write as InfluxDB 2.x's /api/v2/write does: 204 when it takes the batch, otherwise a
// status with a JSON body {"code", "message"} (and Retry-After on 429 and 503). The answers are those
// of InfluxData's write API documentation ("Troubleshoot issues writing data", docs.influxdata.com/
// influxdb/v2/write-data/troubleshoot/, and the v2 API's response codes): a real 2.x cannot be built
// here, so its protocol is recorded in this server. answer picks the response for the n-th request
// (from 1) carrying lines lines.
type v2 struct {
	mu       sync.Mutex
	requests []time.Time
	taken    int
	answer   func(n, lines int) (status int, retryAfter string)
}

func (s *v2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v2/write" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	lines := 0
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			lines++
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, time.Now())
	status, after := s.answer(len(s.requests), lines)
	if status == http.StatusNoContent {
		s.taken += lines
	}
	s.mu.Unlock()
	if after != "" {
		w.Header().Set("Retry-After", after)
	}
	body := map[int]string{
		http.StatusUnauthorized:          `{"code":"unauthorized","message":"unauthorized access"}`,
		http.StatusNotFound:              `{"code":"not found","message":"bucket \"firebreak\" not found"}`,
		http.StatusRequestEntityTooLarge: `{"code":"request too large","message":"unable to read data: points batch is too large"}`,
		http.StatusTooManyRequests:       `{"code":"too many requests","message":"org 0000000000000001 has exceeded limited_write plan limit"}`,
		http.StatusServiceUnavailable:    `{"code":"unavailable","message":"service unavailable"}`,
	}[status]
	if body != "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (s *v2) stats() (int, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken, append([]time.Time(nil), s.requests...)
}

// points offers n samples in one batch.
func offer(s *influx.Sink, n int) {
	b := sample.Batch{Device: "rack-01", At: t0}
	for i := range n {
		b.Samples = append(b.Samples, sample.Sample{Device: "rack-01", Point: fmt.Sprintf("cell_v_%d", i), Role: sample.CellVoltage,
			Value: 3.9, Quality: sample.Good, At: t0})
	}
	s.Offer(b)
}

func runSink(t *testing.T, srv *v2) *influx.Sink {
	t.Helper()
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	s := influx.New(influx.Options{URL: ts.URL, Token: "t", Org: "o", Bucket: "firebreak", Meta: influx.Meta{Site: "s"},
		FlushEvery: 20 * time.Millisecond}, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func TestWriteAPIv2ErrorAnswers(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusUnauthorized, http.StatusNotFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv := &v2{answer: func(int, int) (int, string) { return status, "" }}
			s := runSink(t, srv)
			offer(s, 40)
			hiltest.WaitFor(t, 10*time.Second, "the refused points counted", func() bool { return s.Failed() == 40 })
			if err := s.Failing(); err == nil || !strings.Contains(err.Error(), map[int]string{401: "unauthorized", 404: "not found"}[status]) {
				t.Errorf("Failing() = %v, want the server's reason", err)
			}
			if s.Written() != 0 || s.Dropped() != 0 {
				t.Errorf("written %d, dropped %d", s.Written(), s.Dropped())
			}
		})
	}
	t.Run("413 halves the batch until the server takes it", func(t *testing.T) {
		t.Parallel()
		srv := &v2{answer: func(_, lines int) (int, string) {
			if lines > 100 {
				return http.StatusRequestEntityTooLarge, ""
			}
			return http.StatusNoContent, ""
		}}
		s := runSink(t, srv)
		offer(s, 300)
		hiltest.WaitFor(t, 10*time.Second, "all 300 written", func() bool { return s.Written() == 300 })
		if taken, _ := srv.stats(); taken != 300 || s.Failed() != 0 {
			t.Errorf("the server took %d, the sink counts %d failed", taken, s.Failed())
		}
	})
	for _, c := range []struct {
		name       string
		status     int
		retryAfter string
		atLeast    time.Duration
	}{
		{"429 waits its Retry-After", http.StatusTooManyRequests, "1", time.Second},
		{"503 without Retry-After backs off", http.StatusServiceUnavailable, "", time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := &v2{answer: func(n, _ int) (int, string) {
				if n == 1 {
					return c.status, c.retryAfter
				}
				return http.StatusNoContent, ""
			}}
			s := runSink(t, srv)
			offer(s, 50)
			hiltest.WaitFor(t, 10*time.Second, "the first (refused) write", func() bool { _, r := srv.stats(); return len(r) >= 1 })
			hiltest.WaitFor(t, 10*time.Second, "the points written on a retry", func() bool { return s.Written() == 50 })
			_, reqs := srv.stats()
			if gap := reqs[1].Sub(reqs[0]); gap < c.atLeast-50*time.Millisecond {
				t.Errorf("retried %s after the refusal, want at least %s", gap, c.atLeast)
			}
			if s.Failed() != 0 || s.Failing() != nil {
				t.Errorf("failed %d, failing %v after the retry succeeded", s.Failed(), s.Failing())
			}
		})
	}
}
