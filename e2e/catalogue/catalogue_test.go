// Package catalogue checks docs/metrics.md against the code: every
// runner_manager_* metric the Go sources define or name is listed there with
// its type, every metric listed is defined, and the names follow the
// Prometheus conventions.
package catalogue

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	// anyName is a metric name anywhere in a source (definition, use, comment).
	anyName = regexp.MustCompile(`runner_manager_[a-z_]+`)
	// definition is a collector constructor and the Name of its options.
	definition = regexp.MustCompile(`prometheus\.New(Counter|Gauge|Histogram|Summary)(?:Vec|Func)?\(\s*prometheus\.\w+Opts\{\s*Name:\s*"(runner_manager_[a-z_]+)"`)
	// row is a row of a catalogue table: | `name` | type | ...
	row = regexp.MustCompile("^\\|\\s*`(runner_manager_[a-z_]+)`\\s*\\|\\s*([a-z]+)\\s*\\|")
)

// histogramSuffixes are the series of a histogram that queries and comments
// may name.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "go.work not found above the working directory")
		dir = parent
	}
}

// sources returns the non-test, non-generated Go files under the top
// directories of root, relative to root.
func sources(t *testing.T, root string, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				if e.Name() == "testdata" || e.Name() == "gen" || strings.HasPrefix(e.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			out[rel] = string(b)
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
	}
	return out
}

// catalogue reads the metric rows of docs/metrics.md: name -> type.
func catalogue(t *testing.T, root string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	require.NoError(t, err)
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		_, dup := out[m[1]]
		require.False(t, dup, "docs/metrics.md lists %s twice", m[1])
		out[m[1]] = m[2]
	}
	return out
}

func TestCatalogueMatchesTheCode(t *testing.T) {
	root := repoRoot(t)
	docs := catalogue(t, root)
	require.NotEmpty(t, docs)

	// Definitions: in the shared libraries and the services.
	defined := map[string]string{} // name -> type
	where := map[string]string{}
	for file, src := range sources(t, root, "libs", "services") {
		for _, m := range definition.FindAllStringSubmatch(src, -1) {
			name, typ := m[2], strings.ToLower(m[1])
			require.NotContains(t, defined, name, "%s is defined twice (%s and %s)", name, where[name], file)
			defined[name], where[name] = typ, file
		}
	}
	require.NotEmpty(t, defined, "no metric definition found: the pattern is out of date")

	for name, typ := range defined {
		got, ok := docs[name]
		require.True(t, ok, "%s (defined in %s) is missing from docs/metrics.md", name, where[name])
		require.Equal(t, typ, got, "type of %s in docs/metrics.md", name)
	}
	for name := range docs {
		require.Contains(t, defined, name, "docs/metrics.md lists %s, which no code defines", name)
	}

	// Every name the code mentions (uses, comments, the e2e harness) is a
	// defined metric, or a series of a defined histogram.
	for file, src := range sources(t, root, "libs", "services", "e2e") {
		for _, n := range anyName.FindAllString(src, -1) {
			base := n
			for _, s := range histogramSuffixes {
				if b, ok := strings.CutSuffix(n, s); ok && defined[b] == "histogram" {
					base = b
				}
			}
			require.Contains(t, docs, base, "%s names %s, which docs/metrics.md does not list", file, n)
		}
	}
}

func TestNamesFollowPrometheusConventions(t *testing.T) {
	docs := catalogue(t, repoRoot(t))
	units := []string{"_seconds", "_bytes", "_entries"}
	for name, typ := range docs {
		require.True(t, strings.HasPrefix(name, "runner_manager_"), name)
		require.NotContains(t, name, "__", name)
		switch typ {
		case "counter":
			require.True(t, strings.HasSuffix(name, "_total"), "counter %s ends in _total", name)
		case "gauge", "histogram", "summary":
			require.False(t, strings.HasSuffix(name, "_total"), "%s %s does not end in _total", typ, name)
		default:
			t.Fatalf("%s: unknown type %q", name, typ)
		}
		if typ == "histogram" {
			require.True(t, slices.ContainsFunc(units, func(u string) bool { return strings.HasSuffix(name, u) }),
				"histogram %s ends in its unit (%v)", name, units)
		}
		for _, bad := range []string{"_milliseconds", "_ms", "_kb", "_mb", "_count", "_sum", "_bucket"} {
			require.False(t, strings.HasSuffix(name, bad), "%s: base units and no reserved suffix", name)
		}
		if typ != "counter" && (strings.Contains(name, "duration") || strings.Contains(name, "wait")) {
			require.True(t, strings.HasSuffix(name, "_seconds"), "a duration %s is in _seconds", name)
		}
	}
}
