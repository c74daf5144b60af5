package scenarios

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runner-manager/runner-manager/libs/github/fakegithub"
)

// seq returns, call after call, the values given, then the last one for ever.
func seq[T any](vs ...T) func() T {
	i := 0
	return func() T {
		v := vs[min(i, len(vs)-1)]
		i++
		return v
	}
}

// TestKilledJob checks the job watch's judgement on a job in progress whose
// container the engine does not show running. The CI run of 2026-12-06
// (fe069d9) failed TestChurnNeverKillsAJob on three jobs whose containers were
// "created": the engine marks a container running only once its start
// returns, and on a loaded machine the runner inside already took a job by
// then. A "created" container is one that has not been stopped or removed; it
// is judged once the engine shows it started, or it goes.
func TestKilledJob(t *testing.T) {
	const patience = 2 * time.Second
	inProgress, completed := fakegithub.StatusInProgress, fakegithub.StatusCompleted
	for _, tc := range []struct {
		name   string
		job    []string // the job's status, read after read
		ctr    []string // its container's state, read after read
		killed string   // empty: not killed; else a part of the verdict
	}{
		{"running at once", []string{inProgress}, []string{"running"}, ""},
		{"created, then running", []string{inProgress}, []string{"created", "created", "created", "running"}, ""},
		{"created, then the job completes", []string{inProgress, inProgress, completed}, []string{"created"}, ""},
		{"gone", []string{inProgress}, []string{""}, `container is ""`},
		{"exited", []string{inProgress}, []string{"exited"}, `container is "exited"`},
		{"gone, but the job completed meanwhile", []string{completed}, []string{""}, ""},
		{"created, then removed", []string{inProgress}, []string{"created", "created", "removing"}, `"removing"`},
		{"created for ever", []string{inProgress}, []string{"created"}, "still \"created\" after 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job, ctr := seq(tc.job...), seq(tc.ctr...)
			verdict := killedJob(context.Background(), 1, "rm-r", patience, 10*time.Millisecond,
				func(context.Context) (string, error) { return job(), nil },
				func(context.Context) (string, error) { return ctr(), nil })
			if tc.killed == "" && verdict != "" || tc.killed != "" && !strings.Contains(verdict, tc.killed) {
				t.Fatalf("verdict %q, want one with %q", verdict, tc.killed)
			}
		})
	}
	t.Run("a read that fails is no verdict", func(t *testing.T) {
		verdict := killedJob(context.Background(), 1, "rm-r", patience, 10*time.Millisecond,
			func(context.Context) (string, error) { return "", errors.New("down") },
			func(context.Context) (string, error) { return "", nil })
		if verdict != "" {
			t.Fatalf("verdict %q on a failed read", verdict)
		}
	})
}
