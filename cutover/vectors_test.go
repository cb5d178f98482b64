package cutover

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"os"
	"regexp"
	"testing"
	"time"
)

// TestDocumentedVectors checks the test vectors that docs/cutover.md gives implementers of other
// consumers, read from the document itself so the two cannot drift apart.
func TestDocumentedVectors(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/cutover.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	re := regexp.MustCompile("(?s)<!-- vector:([a-z_]+) -->\\s*```[a-z]*\\n(.*?)\\n```")
	for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
		blocks[m[1]] = m[2]
	}
	for _, name := range []string{"seed", "public_key", "signal", "canonical", "sig"} {
		if blocks[name] == "" {
			t.Fatalf("docs/cutover.md has no vector %q", name)
		}
	}
	seed, err := hex.DecodeString(blocks["seed"])
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("seed: %v", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	if got := base64.StdEncoding.EncodeToString(pub); got != blocks["public_key"] {
		t.Errorf("public key: the seed gives %s, the document says %s", got, blocks["public_key"])
	}
	// The published signal verifies (at its issue time) with the documented public key.
	s, err := Verify([]byte(blocks["signal"]), pub, time.Date(2022, 10, 15, 15, 19, 43, 0, time.UTC))
	if err != nil {
		t.Fatalf("the documented signal does not verify: %v", err)
	}
	if s.Sig != blocks["sig"] {
		t.Errorf("the signal's sig differs from the documented signature")
	}
	canon, err := SigningBytes(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(canon) != blocks["canonical"] {
		t.Errorf("canonical form:\n got %s\nwant %s", canon, blocks["canonical"])
	}
	if got := base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(blocks["canonical"]))); got != blocks["sig"] {
		t.Errorf("signing the documented canonical form gives %s, the document says %s", got, blocks["sig"])
	}
}
