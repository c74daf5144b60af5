package rmctl

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// UsageRow is one group, repository and workflow of GET /api/v1/usage.
type UsageRow struct {
	Group          string  `json:"group"`
	Repository     string  `json:"repository"`
	Workflow       string  `json:"workflow"`
	Jobs           int64   `json:"jobs"`
	BusySeconds    float64 `json:"busy_seconds"`
	IdleSeconds    float64 `json:"idle_seconds"`
	Runners        int64   `json:"runners"`
	Boots          int64   `json:"boots"`
	BootP50Seconds float64 `json:"boot_p50_seconds"`
	BootP95Seconds float64 `json:"boot_p95_seconds"`
	Waits          int64   `json:"waits"`
	WaitP50Seconds float64 `json:"wait_p50_seconds"`
	WaitP95Seconds float64 `json:"wait_p95_seconds"`
}

// UsageReport is the answer of GET /api/v1/usage.
type UsageReport struct {
	From            time.Time  `json:"from"`
	To              time.Time  `json:"to"`
	BucketSeconds   int        `json:"bucket_seconds"`
	TopRepositories int        `json:"top_repositories"`
	Rows            []UsageRow `json:"rows"`
}

// Usage reports where the runner time went over the last since (0: the API's default, 24h).
func (c *Client) Usage(ctx context.Context, since time.Duration) (UsageReport, error) {
	var q url.Values
	if since > 0 {
		q = url.Values{"since": {since.String()}}
	}
	var out UsageReport
	return out, c.do(ctx, http.MethodGet, "/api/v1/usage", q, &out)
}

func (c *CLI) usageReport(ctx context.Context, o *options, args []string) error {
	since := 24 * time.Hour
	_, pos, err := parse("usage", args, o, func(fs *flag.FlagSet) {
		fs.DurationVar(&since, "since", since, "")
	})
	if err != nil {
		return err
	}
	if err := noArgs("usage", pos); err != nil {
		return err
	}
	if since <= 0 {
		return usagef("usage: --since %s: want a positive duration, e.g. 24h", since)
	}
	cl, err := c.client(o)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx, o)
	defer cancel()
	rep, err := cl.Usage(ctx, since)
	if err != nil {
		return err
	}
	if o.output == "json" {
		rep.Rows = nonNil(rep.Rows)
		return c.printJSON(rep)
	}
	if len(rep.Rows) == 0 {
		fmt.Fprintf(c.Stderr, "No runner time since %s.\n", rep.From.Local().Format(time.DateTime))
		return nil
	}
	tw := newTable(c.Stdout)
	row(tw, "GROUP", "REPOSITORY", "WORKFLOW", "JOBS", "BUSY", "IDLE", "BOOT P50", "WAIT P50", "WAIT P95")
	for _, r := range rep.Rows {
		repo, wf := r.Repository, r.Workflow
		if repo == "" {
			repo, wf = "(no job)", "-"
		}
		bootP50, waitP50, waitP95 := "-", "-", "-"
		if r.Boots > 0 {
			bootP50 = seconds(r.BootP50Seconds)
		}
		if r.Waits > 0 {
			waitP50, waitP95 = seconds(r.WaitP50Seconds), seconds(r.WaitP95Seconds)
		}
		row(tw, r.Group, repo, dash(wf), r.Jobs, seconds(r.BusySeconds), seconds(r.IdleSeconds), bootP50, waitP50, waitP95)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.Stderr, "Since %s (%d-minute buckets); repositories beyond the top %d are \"other\".\n",
		rep.From.Local().Format(time.DateTime), rep.BucketSeconds/60, rep.TopRepositories)
	return nil
}

// seconds shows a number of seconds: "4.2s" under a minute, else "1h2m3s".
func seconds(s float64) string {
	if s < 60 {
		return fmt.Sprintf("%.1fs", s)
	}
	return (time.Duration(s) * time.Second).String()
}
