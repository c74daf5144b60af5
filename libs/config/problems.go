// The problem list of a validation: Problem, Problems, and the validator
// that collects them (the YAML tree walk is in tree.go, the rules in
// validate.go).

package config

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one validation problem. Line is the YAML line of the key (of the
// closest enclosing key present in the file when the key itself is absent),
// 0 for a problem of the environment. Path is the key path
// (runner_groups[2].backend.aws.region) or the environment variable. A
// Message never contains a secret.
type Problem struct {
	Line    int
	Path    string
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem of one configuration, sorted by line (problems of
// the environment, without a line, last).
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("invalid configuration (%d problems):\n  %s", len(ps), strings.Join(lines, "\n  "))
}

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if (li == 0) != (lj == 0) {
			return lj == 0
		}
		return li < lj
	})
}

// validator collects problems and finds their lines in the YAML tree.
type validator struct {
	root     *yaml.Node
	ps       Problems
	linePath map[int]string // first key path seen on each line, for the decoder's messages
}

func (v *validator) add(line int, path, format string, args ...any) {
	v.ps = append(v.ps, Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// at reports a problem of the key at path, with its line.
func (v *validator) at(path keyPath, format string, args ...any) {
	_, line, _ := v.find(path)
	v.add(line, path.String(), format, args...)
}

// env reports a problem of an environment variable.
func (v *validator) env(name, format string, args ...any) {
	v.add(0, name, format, args...)
}
