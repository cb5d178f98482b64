package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestHelp: -h prints both forms (serve and record) and is no failure; record -h its flags.
func TestHelp(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &bytes.Buffer{}, &errOut)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "firebreak-sim record") || !strings.Contains(errOut.String(), "-listen") {
		t.Errorf("-h: %v\n%s", err, errOut.String())
	}
	errOut.Reset()
	if err := run(context.Background(), []string{"record", "-h"}, &bytes.Buffer{}, &errOut); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "-out") {
		t.Errorf("record -h: %v\n%s", err, errOut.String())
	}
}
