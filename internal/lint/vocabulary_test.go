package lint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/firebreak-dc/firebreak/alarms"
	"github.com/firebreak-dc/firebreak/internal/sample"
)

// definitions are the files that spell a vocabulary: the roles, the detectors, the topics.
var definitions = map[string]bool{
	"internal/sample/role.go":   true,
	"alarms/detectors.go":       true,
	"internal/wire/topics.go":   true,
	"internal/sim/truth.go":     true, // the simulator's ground truth: physics, spelled like some detectors on purpose
	"internal/lint/doc.go":      true,
	"internal/sample/sample.go": true, // Quality's names: comm_lost is a quality as well as a detector
}

// elsewhere are literals that spell a word of the vocabulary but mean something else there.
var elsewhere = map[string]map[string]string{
	"internal/wire/discovery.go": {"smoke": "Home Assistant's device class", "heat": "Home Assistant's device class"},
	"alarms/types.go":            {"smoke": "the smoke modality's name"},
}

// topicPart is a literal that builds or reads a topic under P: a level of docs/design.md's tree next to
// a slash, with no spaces (messages that name topics for people have them).
var topicPart = regexp.MustCompile(`(^|/)(node|alarm|events|risk|drain|dev|cmd)(/|$)`)

// TestVocabularySpelledOnce: no role, detector id or topic is a string literal outside the file
// that defines it; everything else uses the constants and wire.Topics, so a name changes in
// one place and a typo is a compile error.
func TestVocabularySpelledOnce(t *testing.T) {
	words := map[string]string{}
	for _, r := range sample.Roles {
		words[string(r)] = "role"
	}
	for _, d := range alarms.Detectors() {
		words[string(d.ID)] = "detector"
	}
	if len(words) < 30 {
		t.Fatalf("only %d roles and detectors: the vocabulary did not load", len(words))
	}
	root := moduleRoot(t)
	var found []string
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if definitions[rel] {
			return nil
		}
		files++
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		tags := map[*ast.BasicLit]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field:
				if n.Tag != nil {
					tags[n.Tag] = true
				}
			case *ast.ImportSpec:
				tags[n.Path] = true
			case *ast.BasicLit:
				if n.Kind != token.STRING || tags[n] {
					return true
				}
				v, err := strconv.Unquote(n.Value)
				if err != nil {
					return true
				}
				at := fset.Position(n.Pos())
				where := rel + ":" + strconv.Itoa(at.Line)
				if kind, ok := words[v]; ok && elsewhere[rel][v] == "" {
					found = append(found, where+": the "+kind+" "+strconv.Quote(v))
				}
				if strings.Contains(v, "/") && !strings.ContainsAny(v, " \t\n") && topicPart.MatchString(v) {
					found = append(found, where+": topic "+strconv.Quote(v)+" (build it with wire.Topics)")
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("only %d Go files looked at under %s", files, root)
	}
	sort.Strings(found)
	for _, f := range found {
		t.Error(f)
	}
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = up
	}
}
