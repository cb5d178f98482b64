package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/firebreak-dc/firebreak/internal/testenv"
)

func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("../../configs/agent/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Actions) != 2 || cfg.Actions[0].Exec == nil {
		t.Fatalf("actions %+v", cfg.Actions)
	}
	for _, hook := range []string{"kubectl-drain-power-domain.sh", "lb-weight.sh"} {
		if out, err := exec.Command("sh", "-n", filepath.Join("../../configs/agent/hooks", hook)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v: %s", hook, err, out)
		}
	}
}

// TestLBWeightHook runs the example load-balancer hook against an HTTP server: one PATCH per
// target, weight 0 on drain and 100 on cancel, with the token from its file.
func TestLBWeightHook(t *testing.T) {
	t.Parallel()
	_, err := exec.LookPath("curl")
	testenv.Need(t, "curl (the example hook's HTTP client)", err)
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t0k3n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"drain", "cancel"} {
		cmd := exec.Command("../../configs/agent/hooks/lb-weight.sh")
		cmd.Env = append(os.Environ(), "LB_API="+srv.URL+"/api", "TOKEN_FILE="+token, "FIREBREAK_ACTION="+action,
			"FIREBREAK_DRY_RUN=false", "FIREBREAK_TARGETS=hall-1,hall-2", "FIREBREAK_SIGNAL_ID=e.drain")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", action, err, out)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(got)
	want := []string{
		`PATCH /api/hall-1 Bearer t0k3n {"weight": 0, "reason": "firebreak drain e.drain"}`,
		`PATCH /api/hall-1 Bearer t0k3n {"weight": 100, "reason": "firebreak cancel e.drain"}`,
		`PATCH /api/hall-2 Bearer t0k3n {"weight": 0, "reason": "firebreak drain e.drain"}`,
		`PATCH /api/hall-2 Bearer t0k3n {"weight": 100, "reason": "firebreak cancel e.drain"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
