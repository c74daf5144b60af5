package keys_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/keys"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	k := keys.New("m")
	before, after := keys.Split(k.GroupFree)
	require.Equal(t, "{m}:group:", before)
	require.Equal(t, ":free", after)
	before, after = keys.SplitID(k.Job)
	require.Equal(t, "{m}:job:", before)
	require.Empty(t, after)
	rest, ok := k.Local(k.Runner("r-1"))
	require.True(t, ok)
	require.Equal(t, "runner:r-1", rest)
	_, ok = k.Local(keys.New("other").Runner("r-1"))
	require.False(t, ok)
	require.Equal(t, "{m}:recovery:checkpoint", k.RecoveryCheckpoint(""))
	require.Equal(t, "{m}:recovery:checkpoint:org", k.RecoveryCheckpoint("org"))
}

// keyBuilders match a key name built outside this package: in Go, the
// prefix followed by a literal ("{P}" + ":..."); in Lua (a .lua file or a
// script in a Go string), a literal that starts a name segment appended to
// something (P .. ':runner:').
var keyBuilders = []*regexp.Regexp{
	regexp.MustCompile(`Prefix\(\)\s*\+\s*"`),
	regexp.MustCompile(`\.\.\s*['"]:`),
}

// Every key name is built here: no Go or Lua file of the repository outside
// libs/keys builds one from the prefix.
func TestKeysAreBuiltOnlyHere(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	self, err := filepath.Abs(".")
	require.NoError(t, err)
	var bad []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == self || strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "vendor" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, ".lua") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, re := range keyBuilders {
				if re.MatchString(line) {
					rel, _ := filepath.Rel(root, path)
					bad = append(bad, rel+":"+strconv.Itoa(i+1)+": "+strings.TrimSpace(line))
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, bad, "key names built outside libs/keys (add a method to keys.Keys)")
}
