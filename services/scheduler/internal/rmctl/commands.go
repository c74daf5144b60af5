package rmctl

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
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
	header := []any{"GROUP", "ORGANIZATION", "BACKEND", "MIN", "MAX", "TOTAL", "FREE", "DEMAND"}
	for _, s := range States {
		header = append(header, strings.ToUpper(s))
	}
	row(tw, append(header, "BACKOFF")...)
	for _, g := range gs {
		org := g.Organization
		if g.Repository != "" {
			org += "/" + g.Repository
		}
		cells := []any{g.Name, dash(org), dash(g.Backend), g.MinRunners, g.MaxRunners, g.Total, g.Free, g.Demand}
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
	row(tw, "NAME", "GROUP", "BACKEND", "STATE", "IN STATE", "JOB", "AGE", "INSTANCE")
	for _, r := range rs {
		st := r.State
		if r.DeleteFailures > 0 {
			st = fmt.Sprintf("%s (%d failed deletes)", st, r.DeleteFailures)
		}
		row(tw, r.Name, r.Group, dash(r.Backend), st, ageAt(now, r.StateSince), id(r.JobID), ageAt(now, r.CreatedAt), dash(r.InstanceID))
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
