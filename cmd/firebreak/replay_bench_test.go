package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/firebreak-dc/firebreak/configs"
	"github.com/firebreak-dc/firebreak/internal/config"
	"github.com/firebreak-dc/firebreak/internal/sim"
)

// BenchmarkReplay replays a recorded internal-short (75 min of a 7-device room, ~620,000 samples)
// through `firebreak replay`, CSV parsing and JSON output included, and reports samples per second.
func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	data, _ := configs.FS.ReadFile("sites/demo.yaml")
	site := filepath.Join(dir, "site.yaml")
	if err := os.WriteFile(site, data, 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(site)
	if err != nil {
		b.Fatal(err)
	}
	sc, _ := sim.LoadScenario("internal-short")
	tracePath := filepath.Join(dir, "trace.csv")
	f, _ := os.Create(tracePath)
	bw := bufio.NewWriter(f)
	if _, err := sim.Record(cfg, sc, bw); err != nil {
		b.Fatal(err)
	}
	bw.Flush()
	f.Close()
	raw, _ := os.ReadFile(tracePath)
	rows := bytes.Count(raw, []byte("\n")) - 1
	b.ResetTimer()
	for b.Loop() {
		if err := run(context.Background(), []string{"replay", "-config", site, "-in", tracePath}, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
