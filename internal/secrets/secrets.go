// Package secrets reads what must never be in a config file, the repository or a log:
// passwords, tokens and signing keys, from a file or from the environment. Errors name the file,
// never what is in it.
package secrets

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/firebreak-dc/firebreak/cutover"
)

// MaxBytes is the largest secret file read: a password, a token or a key is far smaller, and a
// path pointing at something else (a log, a device) is refused rather than read whole.
const MaxBytes = 64 << 10

// Read returns the secret in file, surrounding white space trimmed, or, with file "", the value
// of the environment variable env ("" when it is unset, for a broker without a password). A file
// that cannot be read, is larger than MaxBytes or holds nothing but white space is an error.
func Read(file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := readFile(file)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: the file is empty", file)
	}
	return s, nil
}

// SigningKey reads an Ed25519 private key file: PEM PKCS#8 (openssl genpkey -algorithm ed25519)
// or a base64 32-byte seed (cutover.ParseKey). A missing file's error wraps os.ErrNotExist.
func SigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return cutover.ParseKey(b)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("%s: more than %d KiB; not a secret this program reads", path, MaxBytes>>10)
	}
	return b, nil
}
