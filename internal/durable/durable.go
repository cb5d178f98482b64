// Package durable writes small state files so that a crash leaves the old file or the new one,
// never a torn one. It owns no state of its own.
package durable

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WriteFile replaces path with data: write a temporary file, fsync it, rename it over, fsync the
// directory.
func WriteFile(path string, data []byte) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp) // a torn temporary file would only take room on a full disk
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// WriteJSON is WriteFile of v's JSON.
func WriteJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFile(path, b)
}

// checkTrailer ends a file written by WriteChecked: the CRC-32C of everything before it.
const checkTrailer = "\n#firebreak crc32c "

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrChecksum says a file written by WriteChecked no longer holds what was written.
var ErrChecksum = errors.New("checksum mismatch")

// WriteChecked is WriteFile with a checksum trailer, so that ReadChecked finds any later change
// to the bytes (a flipped bit in a JSON file that still parses, a digit of a counter).
func WriteChecked(path string, data []byte) error {
	out := make([]byte, 0, len(data)+len(checkTrailer)+9)
	out = append(out, data...)
	out = append(out, checkTrailer...)
	out = fmt.Appendf(out, "%08x\n", crc32.Checksum(data, castagnoli))
	return WriteFile(path, out)
}

// ReadChecked reads a file written by WriteChecked and returns what was written, or an error
// wrapping ErrChecksum when the bytes changed. A file without the trailer (written before there
// was one) is returned as it is.
func ReadChecked(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndex(b, []byte(checkTrailer))
	if i < 0 {
		return b, nil
	}
	data, tail := b[:i], strings.TrimSpace(string(b[i+len(checkTrailer):]))
	want, perr := strconv.ParseUint(tail, 16, 32)
	if perr != nil || len(tail) != 8 {
		return nil, fmt.Errorf("%w: the trailer %q is damaged", ErrChecksum, tail)
	}
	if got := crc32.Checksum(data, castagnoli); got != uint32(want) {
		return nil, fmt.Errorf("%w: the file's bytes give %08x, it was written with %08x", ErrChecksum, got, want)
	}
	return data, nil
}
