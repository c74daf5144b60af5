package state

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

const (
	lifecycleDoc   = "../../../../docs/lifecycle.md"
	stateMachineAt = "<!-- state machine: generated from transitions; do not edit by hand -->\n"
	stateMachineTo = "<!-- end state machine -->\n"
)

// renderStateMachine renders transitions as the docs show it: a Mermaid
// diagram and a table, states in lifecycle order.
func renderStateMachine() string {
	var b strings.Builder
	b.WriteString("```mermaid\nstateDiagram-v2\n    [*] --> pending: reserved by a top-up\n")
	for _, s := range States() {
		for _, t := range transitions[s] {
			fmt.Fprintf(&b, "    %s --> %s\n", s, t)
		}
	}
	b.WriteString("    deleting --> [*]: deleted result, record removed\n```\n\n")
	b.WriteString("| state | may move to |\n|---|---|\n")
	for _, s := range States() {
		to := make([]string, 0, len(transitions[s]))
		for _, t := range transitions[s] {
			to = append(to, "`"+string(t)+"`")
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", s, strings.Join(to, ", "))
	}
	return b.String()
}

// docs/lifecycle.md shows the state machine of the transitions table.
func TestLifecycleDocMatchesTransitions(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(lifecycleDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	_, rest, ok := strings.Cut(doc, stateMachineAt)
	if !ok {
		t.Fatalf("%s: no line %q", lifecycleDoc, stateMachineAt)
	}
	got, _, ok := strings.Cut(rest, stateMachineTo)
	if !ok {
		t.Fatalf("%s: no line %q after the start marker", lifecycleDoc, stateMachineTo)
	}
	if want := renderStateMachine(); got != want {
		t.Errorf("%s: the state machine differs from transitions (state.go); put this between the markers:\n%s", lifecycleDoc, want)
	}
}
