package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/e2e/harness"
	"github.com/runner-manager/runner-manager/libs/config"
)

// EnvOutDir names where TestStatusPage saves its screenshots; default
// e2e/scenarios/testdata/out (ignored by git).
const EnvOutDir = "RM_E2E_OUT_DIR"

// TestStatusPage (issue 19) opens the scheduler's status page in headless
// Chromium (Debian's chromium, installed by make deps): it logs in through
// the form, finds one section per group with the counts of GET
// /api/v1/groups and a queued job, sees a count change on a refresh
// without a reload, fits a phone's width, and saves screenshots.
func TestStatusPage(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	require.NoError(t, err, "the browser test needs Debian's chromium: run make deps")
	sys := start(t, harness.Options{Groups: []config.RunnerGroup{
		harness.DockerGroup("small", 1, 0, smallLabels...),
		harness.DockerGroup("large", 1, 1, largeLabels...),
	}})
	base := sys.SchedulerURLs[0]
	ids := queueJobs(t, sys, 3, "app", smallLabels, 40*time.Second)

	actx, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 900))...)
	t.Cleanup(cancel)
	browser, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first call starts the browser, on a context without a deadline
	// (a deadline there would stop the browser); every later step has one.
	require.NoError(t, chromedp.Do(browser), "start chromium")
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			// What the browser shows says why.
			t.Fatalf("%s: %v (browser shows: %s)", what, err,
				eval[string](t, browser, `location.href + " | " + document.body.innerText.slice(0, 300)`))
		}
	}

	// The login form posts the token once; the page comes back at "/".
	do("log in through the form",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`#token`),
		chromedp.SendKeys(`#token`, harness.DevAPIToken),
		chromedp.Submit(`#token`),
		chromedp.WaitVisible(`section.group`),
	)
	require.Equal(t, base+"/", eval[string](t, browser, `location.href`), "no token in the URL")
	require.Empty(t, eval[string](t, browser, `document.cookie`), "the session cookie is HttpOnly")
	require.Equal(t, 2, eval[int](t, browser, `document.querySelectorAll('section.group').length`), "one section per group")

	// The counts are those of the admin API (the page refreshes: poll).
	var last string
	eventually(t, 25*time.Second, 500*time.Millisecond, func() bool {
		var api struct {
			Groups []struct {
				Name    string           `json:"name"`
				Total   int64            `json:"total"`
				Demand  int64            `json:"demand"`
				Runners map[string]int64 `json:"runners"`
			} `json:"groups"`
		}
		if sys.Admin(context.Background(), "GET", "/api/v1/groups", &api) != nil {
			return false
		}
		page := pageCounts(t, browser)
		for _, g := range api.Groups {
			want := map[string]int64{"total": g.Total, "demand": g.Demand}
			for s, n := range g.Runners {
				want[s] = n
			}
			for k, v := range want {
				if page[g.Name][k] != v {
					if msg := fmt.Sprintf("group %s %s: page %d, API %d", g.Name, k, page[g.Name][k], v); msg != last {
						t.Logf("not yet: %s", msg)
						last = msg
					}
					return false
				}
			}
		}
		return true
	}, "the page's counts match GET /api/v1/groups")

	// A queued job is listed with its wait.
	queuedJob := eval[string](t, browser, `document.querySelector('[data-group="small"] [data-job]')?.dataset.job ?? ""`)
	require.NotEmpty(t, queuedJob, "small has one runner for three jobs: some wait")
	id, err := strconv.ParseInt(queuedJob, 10, 64)
	require.NoError(t, err)
	require.Contains(t, ids, id)

	// A refresh changes a count, without a reload.
	before := pageCounts(t, browser)["small"]["queued"]
	eval[bool](t, browser, `window.notReloaded = true`)
	queueJobs(t, sys, 1, "app", smallLabels, 40*time.Second)
	eventually(t, 15*time.Second, 250*time.Millisecond, func() bool {
		return pageCounts(t, browser)["small"]["queued"] > before
	}, "a refresh shows the new queued job")
	require.True(t, eval[bool](t, browser, `window.notReloaded === true`), "refreshed in place, not reloaded")

	out := os.Getenv(EnvOutDir)
	if out == "" {
		out = filepath.Join("testdata", "out")
	}
	require.NoError(t, os.MkdirAll(out, 0o755))
	shoot := func(name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 15*time.Second)
		defer cancel()
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err, "screenshot")
		require.NoError(t, os.WriteFile(filepath.Join(out, name), shot, 0o644))
	}
	shoot("status-page.png")

	// A phone: one column, nothing wider than the screen.
	do("phone width", chromedp.EmulateViewport(390, 844), chromedp.WaitVisible(`section.group`))
	require.True(t, eval[bool](t, browser, `document.documentElement.scrollWidth <= window.innerWidth`),
		"no horizontal scrolling at 390 px")
	shoot("status-page-phone.png")
	t.Logf("screenshots in %s", out)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, browser context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// pageCounts reads every data-count of every group section of the page.
func pageCounts(t *testing.T, browser context.Context) map[string]map[string]int64 {
	t.Helper()
	raw := eval[string](t, browser, `JSON.stringify(Object.fromEntries(
		[...document.querySelectorAll('section.group')].map(s => [s.dataset.group,
			Object.fromEntries([...s.querySelectorAll('[data-count]')].map(e => [e.dataset.count, Number(e.textContent)]))])))`)
	out := map[string]map[string]int64{}
	require.NoError(t, json.Unmarshal([]byte(raw), &out))
	return out
}
