package secrets

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firebreak-dc/firebreak/cutover"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("FIREBREAK_TEST_SECRET", "from-env")
	for _, tc := range []struct {
		name, file, want, err string
	}{
		{"a file, trimmed", write("pw", "  s3cret\n"), "s3cret", ""},
		{"no file: the environment", "", "from-env", ""},
		{"missing", filepath.Join(dir, "nope"), "", "no such file"},
		{"empty", write("empty", " \n"), "", "the file is empty"},
		{"too large", write("big", strings.Repeat("x", MaxBytes+1)), "", "more than 64 KiB"},
	} {
		got, err := Read(tc.file, "FIREBREAK_TEST_SECRET")
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q, %v; want %q, error with %q", tc.name, got, err, tc.want, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "xxxx") {
			t.Errorf("%s: the error shows the file's content: %v", tc.name, err)
		}
	}
}

func TestSigningKey(t *testing.T) {
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(nil)
	b, err := cutover.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := SigningKey(p)
	if err != nil || !got.Equal(key) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := SigningKey(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing key: %v, want os.ErrNotExist", err)
	}
}
