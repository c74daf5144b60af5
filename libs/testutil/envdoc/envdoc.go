// Package envdoc compares the environment structs of the binaries with the
// table of docs/configuration.md ("## Environment": variable, read by,
// meaning). Each binary's test checks the rows read by it; libs/service's
// test checks the rows read by every binary.
package envdoc

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/service"
)

// Every is the "read by" of a variable every binary reads.
const Every = "every binary"

// Row is one documented variable.
type Row struct {
	Variable string
	ReadBy   string
}

// Rows returns the rows of the environment table of docs/configuration.md,
// found in the nearest parent directory holding docs/configuration.md.
func Rows(t testing.TB) []Row {
	t.Helper()
	b, err := os.ReadFile(docPath(t))
	require.NoError(t, err)
	var rows []Row
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Environment"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		require.GreaterOrEqual(t, len(cells), 5, "row %q: want | variable | read by | meaning |", line)
		rows = append(rows, Row{
			Variable: strings.Trim(strings.TrimSpace(cells[1]), "`"),
			ReadBy:   strings.TrimSpace(cells[2]),
		})
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, rows, "no environment table in docs/configuration.md")
	return rows
}

// Documented returns the variables the table says readBy reads, sorted.
func Documented(t testing.TB, readBy string) []string {
	t.Helper()
	var vs []string
	for _, r := range Rows(t) {
		if r.ReadBy == readBy {
			vs = append(vs, r.Variable)
		}
	}
	slices.Sort(vs)
	return vs
}

// Check compares the variables of binary's environment struct (a pointer to
// a struct embedding service.Env), less those of service.Env, with the rows
// read by binary.
func Check(t testing.TB, binary string, spec any) {
	t.Helper()
	common := service.EnvVariables("", &service.Env{})
	var own []string
	for _, v := range service.EnvVariables("", spec) {
		if !slices.Contains(common, v) {
			own = append(own, v)
		}
	}
	slices.Sort(own)
	require.Equal(t, own, Documented(t, binary),
		"the variables of %s's environment struct and the rows of docs/configuration.md read by %q differ", binary, binary)
}

func docPath(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		p := filepath.Join(dir, "docs", "configuration.md")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "docs/configuration.md not found above the test's directory")
		dir = parent
	}
}
