package readme

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// imports maps the package names README snippets use to import paths.
var imports = map[string]string{
	"context":     "context",
	"errors":      "errors",
	"fmt":         "fmt",
	"http":        "net/http",
	"httptest":    "net/http/httptest",
	"io":          "io",
	"json":        "encoding/json",
	"log":         "log",
	"os":          "os",
	"slog":        "log/slog",
	"strings":     "strings",
	"testing":     "testing",
	"time":        "time",
	"kyapay":      "github.com/kyapay/kyapay-go/kyapay",
	"kyapaytest":  "github.com/kyapay/kyapay-go/kyapay/kyapaytest",
	"middleware":  "github.com/kyapay/kyapay-go/middleware",
	"charge":      "github.com/kyapay/kyapay-go/charge",
	"jwks":        "github.com/kyapay/kyapay-go/jwks",
	"kyapaygin":   "github.com/kyapay/kyapay-go/middleware/kyapaygin",
	"kyapayecho":  "github.com/kyapay/kyapay-go/middleware/kyapayecho",
	"kyapaymcp":   "github.com/kyapay/kyapay-go/middleware/kyapaymcp",
	"kyapaymcpgo": "github.com/kyapay/kyapay-go/middleware/kyapaymcpgo",
	"kyapayprom":  "github.com/kyapay/kyapay-go/middleware/kyapayprom",
	"kyapayotel":  "github.com/kyapay/kyapay-go/middleware/kyapayotel",
	"kyapayredis": "github.com/kyapay/kyapay-go/middleware/kyapayredis",
	"gin":         "github.com/gin-gonic/gin",
	"echo":        "github.com/labstack/echo/v4",
	"mcp":         "github.com/modelcontextprotocol/go-sdk/mcp",
	"server":      "github.com/mark3labs/mcp-go/server",
	"prometheus":  "github.com/prometheus/client_golang/prometheus",
	"promhttp":    "github.com/prometheus/client_golang/prometheus/promhttp",
	"redis":       "github.com/redis/go-redis/v9",
}

// snippet is one fenced go block of the README.
type snippet struct {
	line    int    // line of the opening fence
	module  string // module directory, relative to the repository root
	prelude []string
	code    string
}

var (
	moduleRe  = regexp.MustCompile(`^<!--\s*snippet\s+module=(\S+)\s*-->$`)
	preludeRe = regexp.MustCompile(`^<!--\s*prelude:\s*(.*?)\s*-->$`)
	usesRe    = regexp.MustCompile(`\b([a-z][a-z0-9]*)\.[A-Z]`)
)

func parse(t *testing.T, path string) []snippet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []snippet
	var pending snippet
	var cur *snippet
	var body strings.Builder
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if trimmed == "```" {
				cur.code = body.String()
				out = append(out, *cur)
				cur = nil
				pending = snippet{}
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
			continue
		}
		switch {
		case trimmed == "```go":
			s := pending
			s.line = n
			cur = &s
			body.Reset()
		case moduleRe.MatchString(trimmed):
			pending.module = moduleRe.FindStringSubmatch(trimmed)[1]
		case preludeRe.MatchString(trimmed):
			pending.prelude = append(pending.prelude, preludeRe.FindStringSubmatch(trimmed)[1])
		case trimmed == "":
		default:
			pending = snippet{}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// program turns a snippet into a compilable main package.
func program(s snippet) (string, error) {
	if strings.HasPrefix(strings.TrimSpace(s.code), "package ") {
		return s.code, nil
	}
	all := stripComments(strings.Join(s.prelude, "\n") + "\n" + s.code)
	used := map[string]bool{}
	for _, m := range usesRe.FindAllStringSubmatch(all, -1) {
		used[m[1]] = true
	}
	var names []string
	for name := range used {
		if _, ok := imports[name]; ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("package main\n\nimport (\n")
	for _, name := range names {
		fmt.Fprintf(&b, "\t%s %q\n", name, imports[name])
	}
	b.WriteString(")\n\n")
	for _, p := range s.prelude {
		b.WriteString(p + "\n")
	}
	first := strings.TrimSpace(s.code)
	if hasDeclPrefix(first) {
		b.WriteString(s.code)
		if !strings.Contains(s.code, "func main()") {
			b.WriteString("\nfunc main() {}\n")
		}
	} else {
		b.WriteString("func main() {\n" + s.code + "}\n")
	}
	return b.String(), nil
}

func hasDeclPrefix(s string) bool {
	for _, p := range []string{"func ", "type ", "var ", "const ", "//"} {
		if strings.HasPrefix(s, p) {
			if p == "//" {
				// Skip leading comment lines.
				rest := s
				for strings.HasPrefix(rest, "//") {
					i := strings.IndexByte(rest, '\n')
					if i < 0 {
						return false
					}
					rest = strings.TrimSpace(rest[i+1:])
				}
				return hasDeclPrefix(rest)
			}
			return true
		}
	}
	return false
}

// commentRe matches a line comment that starts the line or follows white
// space (so the "//" of a URL inside a string is left alone).
var commentRe = regexp.MustCompile(`(?m)(^|\s)//.*$`)

// stripComments removes line comments, so that a package named only in a
// comment is not imported (an unused import does not compile).
func stripComments(src string) string { return commentRe.ReplaceAllString(src, "$1") }

func TestREADMESnippetsCompile(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	snippets := parse(t, filepath.Join(root, "README.md"))
	if len(snippets) == 0 {
		t.Fatal("README.md has no go snippets")
	}
	if testing.Short() {
		t.Skip("compiles every README snippet with the go command")
	}
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	for _, s := range snippets {
		t.Run(fmt.Sprintf("line%d", s.line), func(t *testing.T) {
			src, err := program(s)
			if err != nil {
				t.Fatal(err)
			}
			modDir := filepath.Join(root, filepath.FromSlash(s.module))
			if _, err := os.Stat(filepath.Join(modDir, "go.mod")); err != nil {
				t.Fatalf("README line %d: snippet module %q has no go.mod", s.line, s.module)
			}
			dir, err := os.MkdirTemp(modDir, "readme-snippet-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(goBin, "vet", "./"+filepath.Base(dir))
			cmd.Dir = modDir
			cmd.Env = append(os.Environ(), "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("README.md line %d does not compile in module %q:\n%s\nprogram:\n%s", s.line, s.module, out, numbered(src))
			}
		})
	}
}

func numbered(src string) string {
	var b strings.Builder
	for i, l := range strings.Split(src, "\n") {
		fmt.Fprintf(&b, "%3d %s\n", i+1, l)
	}
	return b.String()
}
