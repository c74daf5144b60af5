// Package rmctl is the command line of runner-manager's operators: a client
// of the scheduler's admin API (groups, runners, the dead-letter queue) and a
// configuration checker.
//
// Output is a table for people and JSON (-o json) for scripts. Exit codes
// scripts can trust:
//
//	0 success
//	1 the operation failed (the API refused or failed, unreachable, invalid configuration)
//	2 usage error (unknown command or flag, missing argument, a request the API calls bad)
//	3 not found (no such runner or dead letter)
//	4 authentication failed (RM_API_TOKEN missing or wrong)
package rmctl

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Exit codes of rmctl.
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitUsage    = 2
	ExitNotFound = 3
	ExitAuth     = 4
)

// DefaultURL is the admin API's address when neither --url nor RM_API_URL
// says otherwise (the scheduler's default listen address, reached through
// `kubectl port-forward`).
const DefaultURL = "http://127.0.0.1:8081"

// Env is rmctl's environment, read with envconfig by Main (docs/configuration.md
// lists it; a test compares the two). The flags --url and --token win.
type Env struct {
	// URL of the scheduler's admin API; empty: DefaultURL.
	URL string `envconfig:"RM_API_URL"`
	// Token is the admin API's bearer token.
	Token string `envconfig:"RM_API_TOKEN"`
}

const usage = `rmctl: operate a runner-manager through the scheduler's admin API.

Usage:
  rmctl [flags] <command> [arguments]

Commands:
  groups                         runner groups: mode, limits, runners per state, demand
  group pause NAME               no new runners for the group (queued jobs wait); idle runners kept
  group drain NAME [-y]          no new runners, idle runners deleted, busy ones when their job ends
                                 (asks for confirmation on a terminal; -y skips it)
  group resume NAME              back to normal: waiting jobs get runners
  runners [--group G] [--state S]  runners (states: pending, started, idle, busy, deleting)
  runner get NAME                one runner's record
  runner delete NAME [--force]   delete a runner (--force: even a busy one, killing its job)
  dlq list [--count N]           dead letters, newest first
  dlq retry ID                   put a dead letter back on its stream
  usage [--since 24h]            where the runner time went: per group, repository and workflow
  config check FILE              validate a configuration file (with the RM_ environment)

Flags (anywhere on the line):
  --url URL        admin API of the scheduler (env RM_API_URL, default http://127.0.0.1:8081)
  --token TOKEN    API token (env RM_API_TOKEN)
  -o table|json    output format (default table)
  --timeout D      timeout of the request (default 30s)

Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 not found, 4 authentication failed.
`

// CLI is one invocation's environment.
type CLI struct {
	Stdout, Stderr io.Writer
	// Stdin answers confirmations (os.Stdin).
	Stdin io.Reader
	// StdinIsTerminal tells whether Stdin is a terminal: a confirmation is
	// asked only there (nil: not a terminal).
	StdinIsTerminal func() bool
	// Env is the environment (Main reads the process's).
	Env Env
	// Now is the time ages are computed from (time.Now).
	Now func() time.Time
	// HTTP client of the API; nil: the default with --timeout.
	HTTP *http.Client
}

// ReadEnv reads the process's environment into Env.
func ReadEnv() (Env, error) {
	var e Env
	err := envconfig.Process("", &e)
	return e, err
}

// Main runs rmctl with the process's arguments and environment and returns
// the exit code.
func Main(args []string) int {
	c := &CLI{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, StdinIsTerminal: stdinIsTerminal, Now: time.Now}
	env, err := ReadEnv()
	if err != nil {
		fmt.Fprintln(c.Stderr, "rmctl: environment:", err)
		return ExitUsage
	}
	c.Env = env
	return c.Run(context.Background(), args)
}

// options are the flags every command accepts.
type options struct {
	url     string
	token   string
	output  string
	timeout time.Duration
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// errHelp: -h or --help anywhere.
var errHelp = errors.New("help requested")

// errConfigInvalid: config check found problems (already printed).
var errConfigInvalid = errors.New("configuration invalid")

// Run runs one command line and returns its exit code.
func (c *CLI) Run(ctx context.Context, args []string) int {
	var o options
	o.url = cmp.Or(c.Env.URL, DefaultURL)
	o.token = c.Env.Token
	o.output = "table"
	o.timeout = 30 * time.Second
	err := c.dispatch(ctx, &o, args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(c.Stdout, usage)
		return ExitOK
	}
	return c.report(&o, err)
}

func (c *CLI) dispatch(ctx context.Context, o *options, args []string) error {
	// The flags before the command; the command parses the rest.
	_, pos, err := parse("", args, o, nil)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("no command")
	}
	if o.output != "table" && o.output != "json" {
		return usagef("-o %q: want table or json", o.output)
	}
	cmd, rest := pos[0], pos[1:]
	switch cmd {
	case "help":
		fmt.Fprint(c.Stdout, usage)
		return nil
	case "groups":
		return c.groups(ctx, o, rest)
	case "group":
		if len(rest) == 0 {
			return usagef("group: want pause NAME, drain NAME or resume NAME")
		}
		switch rest[0] {
		case "pause", "drain", "resume":
			return c.groupMode(ctx, o, rest[0], rest[1:])
		}
		return usagef("group %s: unknown subcommand (want pause, drain or resume)", rest[0])
	case "runners":
		return c.runners(ctx, o, rest)
	case "runner":
		if len(rest) == 0 {
			return usagef("runner: want get NAME or delete NAME")
		}
		switch rest[0] {
		case "get":
			return c.runnerGet(ctx, o, rest[1:])
		case "delete", "rm":
			return c.runnerDelete(ctx, o, rest[1:])
		}
		return usagef("runner %s: unknown subcommand (want get or delete)", rest[0])
	case "dlq":
		if len(rest) == 0 {
			return usagef("dlq: want list or retry ID")
		}
		switch rest[0] {
		case "list", "ls":
			return c.dlqList(ctx, o, rest[1:])
		case "retry":
			return c.dlqRetry(ctx, o, rest[1:])
		}
		return usagef("dlq %s: unknown subcommand (want list or retry)", rest[0])
	case "usage":
		return c.usageReport(ctx, o, rest)
	case "config":
		if len(rest) == 0 || rest[0] != "check" {
			return usagef("config: want check FILE")
		}
		return c.configCheck(o, rest[1:])
	}
	return usagef("unknown command %q", cmd)
}

// parse parses the common flags and those extra adds, and returns the
// positional arguments. A command (name != "") takes flags anywhere among its
// arguments; the command line itself (name == "") stops at the command, whose
// own flags follow.
func parse(name string, args []string, o *options, extra func(*flag.FlagSet)) (*flag.FlagSet, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.url, "url", o.url, "")
	fs.StringVar(&o.token, "token", o.token, "")
	fs.StringVar(&o.output, "o", o.output, "")
	fs.StringVar(&o.output, "output", o.output, "")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "")
	if extra != nil {
		extra(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, errHelp
			}
			if name == "" {
				return nil, nil, usagef("%v", err)
			}
			return nil, nil, usagef("%s: %v", name, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return fs, pos, nil
		}
		if name == "" {
			return fs, args, nil
		}
		if args[0] == "--" {
			return fs, append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (c *CLI) client(o *options) (*Client, error) {
	if !strings.HasPrefix(o.url, "http://") && !strings.HasPrefix(o.url, "https://") {
		return nil, usagef("--url %q: want http://HOST:PORT or https://HOST:PORT", o.url)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: o.timeout}
	}
	return &Client{BaseURL: o.url, Token: o.token, HTTP: hc}, nil
}

func (c *CLI) withTimeout(ctx context.Context, o *options) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.timeout)
}

// report prints err as something to act on and returns the exit code.
func (c *CLI) report(o *options, err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		ue *usageError
		ae *APIError
		ne *UnreachableError
	)
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(c.Stderr, "rmctl: %s\nRun 'rmctl help' for usage.\n", ue.msg)
		return ExitUsage
	case errors.Is(err, errConfigInvalid), errors.Is(err, errNotConfirmed):
		return ExitFailed
	case errors.As(err, &ae):
		switch {
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			fmt.Fprintf(c.Stderr, "rmctl: %d: RM_API_TOKEN is missing or wrong: set it (or --token) to the scheduler's API token\n", ae.Status)
			return ExitAuth
		case ae.Status == http.StatusNotFound:
			fmt.Fprintf(c.Stderr, "rmctl: not found: %s\n", cmp.Or(ae.Message, "no such resource"))
			return ExitNotFound
		case ae.Status == http.StatusBadRequest:
			fmt.Fprintf(c.Stderr, "rmctl: the API refused the request: %s\n", cmp.Or(ae.Message, "bad request"))
			return ExitUsage
		case ae.Status == http.StatusConflict:
			fmt.Fprintf(c.Stderr, "rmctl: %s\n", cmp.Or(ae.Message, "conflict"))
			return ExitFailed
		case ae.Status >= 500:
			fmt.Fprintf(c.Stderr, "rmctl: the scheduler failed (%d): %s; see the scheduler's logs\n", ae.Status, cmp.Or(ae.Message, http.StatusText(ae.Status)))
			return ExitFailed
		}
		fmt.Fprintf(c.Stderr, "rmctl: %v\n", ae)
		return ExitFailed
	case errors.As(err, &ne):
		if errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
			fmt.Fprintf(c.Stderr, "rmctl: no answer from the admin API at %s within %s (--timeout)\n", o.url, o.timeout)
			return ExitFailed
		}
		fmt.Fprintf(c.Stderr, "rmctl: cannot reach the admin API at %s: %v\n"+
			"Set RM_API_URL (or --url) to the scheduler's address, e.g. %s after `kubectl port-forward svc/<release>-scheduler 8081`.\n",
			o.url, ne.Err, DefaultURL)
		return ExitFailed
	}
	fmt.Fprintf(c.Stderr, "rmctl: %v\n", err)
	return ExitFailed
}

// stdinIsTerminal tells whether the process's standard input is a terminal
// (a character device).
func stdinIsTerminal() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printJSON writes v as indented JSON.
func (c *CLI) printJSON(v any) error {
	enc := json.NewEncoder(c.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

func noArgs(cmd string, pos []string) error {
	if len(pos) > 0 {
		return usagef("%s: unexpected argument %q", cmd, pos[0])
	}
	return nil
}

func oneArg(cmd, what string, pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("%s: missing %s", cmd, what)
	case 1:
		if pos[0] == "" {
			return "", usagef("%s: empty %s", cmd, what)
		}
		return pos[0], nil
	}
	return "", usagef("%s: unexpected argument %q after %s", cmd, pos[1], what)
}

func (c *CLI) configCheck(o *options, args []string) error {
	_, pos, err := parse("config check", args, o, nil)
	if err != nil {
		return err
	}
	file, err := oneArg("config check", "FILE", pos)
	if err != nil {
		return err
	}
	cfg, err := config.Load(file)
	var ps config.Problems
	if err != nil && !errors.As(err, &ps) {
		return fmt.Errorf("config check: %w", err)
	}
	var groups []config.RunnerGroup
	if cfg != nil {
		groups = cfg.RunnerGroups
	}
	if o.output == "json" {
		type problem struct {
			Line    int    `json:"line,omitempty"`
			Path    string `json:"path,omitempty"`
			Message string `json:"message"`
		}
		// group is what matching reads of a runner group (docs/configuration.md).
		type group struct {
			Name         string   `json:"name"`
			Organization string   `json:"organization"`
			Repository   string   `json:"repository"`
			WorkflowName string   `json:"workflow_name"`
			Labels       []string `json:"labels"`
			MinRunners   int      `json:"min_runners"`
			MaxRunners   int      `json:"max_runners"`
			SpillOver    bool     `json:"spill_over"`
		}
		out := struct {
			File     string    `json:"file"`
			Valid    bool      `json:"valid"`
			Problems []problem `json:"problems"`
			Groups   []group   `json:"groups,omitempty"`
		}{File: file, Valid: len(ps) == 0, Problems: []problem{}}
		for _, p := range ps {
			out.Problems = append(out.Problems, problem{p.Line, p.Path, p.Message})
		}
		for _, g := range groups {
			out.Groups = append(out.Groups, group{g.Name, g.Organization, g.Repository, g.WorkflowName, g.Labels, g.MinRunners, g.MaxRunners, g.SpillOver})
		}
		if err := c.printJSON(out); err != nil {
			return err
		}
	} else {
		for _, p := range ps {
			loc := file
			if p.Line > 0 {
				loc = fmt.Sprintf("%s:%d", file, p.Line)
			}
			if p.Path != "" {
				fmt.Fprintf(c.Stdout, "%s: %s: %s\n", loc, p.Path, p.Message)
			} else {
				fmt.Fprintf(c.Stdout, "%s: %s\n", loc, p.Message)
			}
		}
		if len(ps) == 0 {
			fmt.Fprintf(c.Stdout, "%s: valid\n", file)
			// The groups in the order of the file, as a job finds them.
			tw := newTable(c.Stdout)
			row(tw, "GROUP", "ORGANIZATION", "REPOSITORY", "WORKFLOW", "LABELS", "MIN", "MAX", "SPILL-OVER")
			for _, g := range groups {
				spill := "no"
				if g.SpillOver {
					spill = "yes"
				}
				row(tw, g.Name, g.Organization, dash(g.Repository), dash(g.WorkflowName), strings.Join(g.Labels, ","), g.MinRunners, g.MaxRunners, spill)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	if len(ps) > 0 {
		fmt.Fprintf(c.Stderr, "rmctl: %s: %d %s\n", file, len(ps), plural(len(ps), "problem", "problems"))
		return errConfigInvalid
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
