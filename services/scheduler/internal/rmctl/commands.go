package rmctl

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// States of a runner, in the order of its life (the columns of `groups`).
var States = []string{"pending", "started", "idle", "busy", "deleting"}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func row(tw *tabwriter.Writer, cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(tw, strings.Join(s, "\t"))
}

func (c *CLI) groups(ctx context.Context, o *options, args []string) error {
	_, pos, err := parse("groups", args, o, nil)
	if err != nil {
		return err
	}
	if err := noArgs("groups", pos); err != nil {
		return err
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, o)
	defer cancel()
	gs, err := cl.Groups(ctx)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return c.printJSON(nonNil(gs))
	}
	if len(gs) == 0 {
		fmt.Fprintln(c.Stderr, "No runner groups configured.")
		return nil
	}
	tw := newTable(c.Stdout)
	header := []any{"GROUP", "MODE", "ORGANIZATION", "BACKEND", "MIN", "MAX", "TOTAL", "FREE", "DEMAND"}
	for _, s := range States {
		header = append(header, strings.ToUpper(s))
	}
	row(tw, append(header, "BACKOFF")...)
	for _, g := range gs {
		org := g.Organization
		if g.Repository != "" {
			org += "/" + g.Repository
		}
		cells := []any{g.Name, dash(g.Mode), dash(org), dash(g.Backend), g.MinRunners, g.MaxRunners, g.Total, g.Free, g.Demand}
		for _, s := range States {
			cells = append(cells, g.Runners[s])
		}
		backoff := "-"
		if g.BackoffSeconds > 0 {
			backoff = age(time.Duration(g.BackoffSeconds * float64(time.Second)))
		}
		row(tw, append(cells, backoff)...)
	}
	return tw.Flush()
}

func (c *CLI) runners(ctx context.Context, o *options, args []string) error {
	var group, state string
	_, pos, err := parse("runners", args, o, func(fs *flag.FlagSet) {
		fs.StringVar(&group, "group", "", "")
		fs.StringVar(&state, "state", "", "")
	})
	if err != nil {
		return err
	}
	if err := noArgs("runners", pos); err != nil {
		return err
	}
	if state != "" && !slices.Contains(States, state) {
		return usagef("runners: --state %q: want one of %s", state, strings.Join(States, ", "))
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, o)
	defer cancel()
	rs, err := cl.Runners(ctx, group, state)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return c.printJSON(nonNil(rs))
	}
	if len(rs) == 0 {
		fmt.Fprintln(c.Stderr, "No runners.")
		return nil
	}
	now := c.now()
	tw := newTable(c.Stdout)
	row(tw, "NAME", "GROUP", "BACKEND", "STATE", "IN STATE", "JOB", "REPOSITORY", "WORKFLOW", "AGE", "INSTANCE")
	for _, r := range rs {
		st := r.State
		if r.DeleteFailures > 0 {
			st = fmt.Sprintf("%s (%d failed deletes)", st, r.DeleteFailures)
		}
		row(tw, r.Name, r.Group, dash(r.Backend), st, ageAt(now, r.StateSince), id(r.JobID), dash(r.JobRepository),
			dash(cell(r.JobWorkflow, maxWorkflowCell)), ageAt(now, r.CreatedAt), dash(r.InstanceID))
	}
	return tw.Flush()
}

func (c *CLI) runnerGet(ctx context.Context, o *options, args []string) error {
	_, pos, err := parse("runner get", args, o, nil)
	if err != nil {
		return err
	}
	name, err := oneArg("runner get", "NAME", pos)
	if err != nil {
		return err
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, o)
	defer cancel()
	r, err := cl.Runner(ctx, name)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return c.printJSON(r)
	}
	now := c.now()
	tw := newTable(c.Stdout)
	row(tw, "Name:", r.Name)
	row(tw, "Group:", r.Group)
	row(tw, "Backend:", dash(r.Backend))
	row(tw, "State:", fmt.Sprintf("%s for %s (since %s)", r.State, ageAt(now, r.StateSince), stamp(r.StateSince)))
	row(tw, "Job:", id(r.JobID))
	if r.JobID != 0 {
		row(tw, "Job run:", id(r.JobRunID))
		row(tw, "Job repository:", dash(r.JobRepository))
		row(tw, "Job workflow:", dash(cell(r.JobWorkflow, 1024)))
	}
	row(tw, "Created for job:", id(r.ForJob))
	row(tw, "Instance:", dash(r.InstanceID))
	row(tw, "Location:", dash(location(r.Location)))
	reg := r.Organization
	if r.Repository != "" {
		reg += "/" + r.Repository
	}
	row(tw, "Registered in:", dash(reg))
	row(tw, "GitHub runner id:", id(r.GitHubRunnerID))
	if r.DeleteFailures > 0 {
		row(tw, "Failed deletes:", fmt.Sprintf("%d, last: %s", r.DeleteFailures, r.DeleteError))
	}
	row(tw, "Create attempt:", r.Attempt)
	row(tw, "Created:", fmt.Sprintf("%s (%s ago)", stamp(r.CreatedAt), ageAt(now, r.CreatedAt)))
	row(tw, "Updated:", fmt.Sprintf("%s (%s ago)", stamp(r.UpdatedAt), ageAt(now, r.UpdatedAt)))
	return tw.Flush()
}

func (c *CLI) runnerDelete(ctx context.Context, o *options, args []string) error {
	var force bool
	_, pos, err := parse("runner delete", args, o, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "")
	})
	if err != nil {
		return err
	}
	name, err := oneArg("runner delete", "NAME", pos)
	if err != nil {
		return err
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, o)
	defer cancel()
	d, err := cl.DeleteRunner(ctx, name, force)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return c.printJSON(d)
	}
	fmt.Fprintf(c.Stdout, "runner %s: %s (was %s); the provisioner deletes it\n", d.Runner, d.State, d.PreviousState)
	return nil
}

func (c *CLI) dlqList(ctx context.Context, o *options, args []string) error {
	var count int
	_, pos, err := parse("dlq list", args, o, func(fs *flag.FlagSet) {
		fs.IntVar(&count, "count", 0, "")
	})
	if err != nil {
		return err
	}
	if err := noArgs("dlq list", pos); err != nil {
		return err
	}
	if count < 0 {
		return usagef("dlq list: --count must be positive")
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, o)
	defer cancel()
	ds, err := cl.DLQ(ctx, count)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return c.printJSON(nonNil(ds))
	}
	if len(ds) == 0 {
		fmt.Fprintln(c.Stderr, "The dead-letter queue is empty.")
		return nil
	}
	now := c.now()
	tw := newTable(c.Stdout)
	row(tw, "ID", "STREAM", "TYPE", "DELIVERIES", "AGE", "REASON")
	for _, d := range ds {
		row(tw, d.ID, d.OriginStream, dash(d.Type), d.Deliveries, ageAt(now, d.Time), dash(truncate(oneLine(d.Reason), 80)))
	}
	return tw.Flush()
}

func (c *CLI) dlqRetry(ctx context.Context, o *options, args []string) error {
	_, pos, err := parse("dlq retry", args, o, nil)
	if err != nil {
		return err
	}
	id, err := oneArg("dlq retry", "ID", pos)
	if err != nil {
		return err
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, o)
	defer cancel()
	r, err := cl.RetryDLQ(ctx, id)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return c.printJSON(r)
	}
	fmt.Fprintf(c.Stdout, "dead letter %s: back on its stream\n", r.Retried)
	return nil
}

func (c *CLI) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// nonNil makes an empty list print as [] in JSON.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// maxWorkflowCell bounds the workflow column of rmctl runners (a workflow
// name may be long; rmctl runner get shows it whole).
const maxWorkflowCell = 40

// cell cuts s to n runes, marking the cut, and makes it one line.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func id(n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func ageAt(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return age(now.Sub(t))
}

// age is a duration the way kubectl shows ages: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// location renders a runner's location as sorted key=value pairs.
func location(loc map[string]string) string {
	parts := make([]string, 0, len(loc))
	for _, k := range slices.Sorted(maps.Keys(loc)) {
		v := loc[k]
		if v == "" {
			v = "(default)"
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

// errNotConfirmed: the operator answered no to a confirmation (nothing done).
var errNotConfirmed = errors.New("not confirmed")

// groupMode pauses, drains or resumes a group. A drain deletes the group's
// idle runners, so it asks first on a terminal (-y skips it) and refuses
// without -y when nobody can answer.
func (c *CLI) groupMode(ctx context.Context, o *options, action string, args []string) error {
	var yes bool
	cmd := "group " + action
	_, pos, err := parse(cmd, args, o, func(fs *flag.FlagSet) {
		fs.BoolVar(&yes, "y", false, "")
		fs.BoolVar(&yes, "yes", false, "")
	})
	if err != nil {
		return err
	}
	name, err := oneArg(cmd, "NAME", pos)
	if err != nil {
		return err
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, o)
	defer cancel()
	if action == "drain" && !yes {
		if err := c.confirmDrain(ctx, cl, name); err != nil {
			return err
		}
	}
	m, err := cl.SetGroupMode(ctx, name, action)
	if err != nil {
		return err
	}
	if o.output == "json" {
		m.Deleting, m.Reserved = nonNil(m.Deleting), nonNil(m.Reserved)
		return c.printJSON(m)
	}
	fmt.Fprintf(c.Stdout, "group %s: %s (was %s)", m.Group, m.Mode, m.PreviousMode)
	switch action {
	case "drain":
		fmt.Fprintf(c.Stdout, "; %d idle %s deleting, busy ones go when their job completes", len(m.Deleting), plural(len(m.Deleting), "runner", "runners"))
	case "resume":
		fmt.Fprintf(c.Stdout, "; %d %s reserved for waiting jobs", len(m.Reserved), plural(len(m.Reserved), "runner", "runners"))
	case "pause":
		fmt.Fprint(c.Stdout, "; queued jobs wait, idle runners are kept")
	}
	fmt.Fprintln(c.Stdout)
	return nil
}

// confirmDrain asks "drain group X: N idle runners will be deleted [y/N]"
// on a terminal, N from GET /api/v1/groups (the group's pending, started
// and idle runners). Without a terminal it refuses: -y says yes.
func (c *CLI) confirmDrain(ctx context.Context, cl *Client, name string) error {
	if c.Stdin == nil || c.StdinIsTerminal == nil || !c.StdinIsTerminal() {
		return usagef("group drain %s: deletes the group's idle runners; confirm with -y (standard input is not a terminal)", name)
	}
	gs, err := cl.Groups(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(gs, func(g Group) bool { return g.Name == name })
	if i < 0 {
		return &APIError{Status: http.StatusNotFound, Code: "not_found", Message: "no runner group " + strconv.Quote(name) + " in the configuration"}
	}
	fmt.Fprintf(c.Stderr, "drain group %s: %d idle %s will be deleted [y/N] ", name, gs[i].Free, plural(int(gs[i].Free), "runner", "runners"))
	answer, _ := bufio.NewReader(c.Stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	fmt.Fprintln(c.Stderr, "Not drained.")
	return errNotConfirmed
}
