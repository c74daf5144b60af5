package rmctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The Grafana dashboard ships twice: in the Helm chart (a ConfigMap when
// metrics.dashboard.enabled) and under deploy/grafana for other installs.
var dashboardCopies = []string{
	"../../../../charts/runner-manager/dashboards/runner-manager.json",
	"../../../../deploy/grafana/runner-manager.json",
}

// dashboardMetrics are the metric names the dashboard may use, to be checked
// against the metrics catalogue (docs) and the code that registers them.
var dashboardMetrics = []string{
	"runner_manager_ingress_webhooks_total",
	"runner_manager_ingress_publish_duration_seconds",
	"runner_manager_scheduler_job_wait_seconds",
	"runner_manager_scheduler_runners",
	"runner_manager_scheduler_demand",
	"runner_manager_scheduler_max_runners",
	"runner_manager_scheduler_commands_total",
	"runner_manager_scheduler_results_total",
	"runner_manager_provisioner_backend_call_duration_seconds",
	"runner_manager_provisioner_commands_total",
	"runner_manager_stream_pending_entries",
	"runner_manager_stream_lag_entries",
	"runner_manager_stream_dead_lettered_total",
	"runner_manager_stream_dlq_entries",
	"runner_manager_github_rate_limit_remaining",
	"runner_manager_github_api_calls_total",
	"runner_manager_health_actions_total",
	"runner_manager_recovery_redeliveries_total",
	"runner_manager_recovery_deliveries_failed_total",
	"runner_manager_usage_busy_seconds_total",
	"runner_manager_usage_idle_seconds_total",
	"runner_manager_usage_job_wait_seconds",
	"runner_manager_usage_boot_seconds",
}

// histograms among dashboardMetrics, whose _bucket, _sum and _count series
// may be used.
var dashboardHistograms = []string{
	"runner_manager_ingress_publish_duration_seconds",
	"runner_manager_scheduler_job_wait_seconds",
	"runner_manager_provisioner_backend_call_duration_seconds",
	"runner_manager_usage_job_wait_seconds",
	"runner_manager_usage_boot_seconds",
}

// promqlWords are the PromQL functions, aggregations and keywords the
// dashboard uses (an identifier outside this list is a metric name).
var promqlWords = []string{
	"sum", "min", "max", "avg", "count", "by", "without", "rate", "increase", "irate",
	"histogram_quantile", "le", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
	"clamp_min", "clamp_max", "topk", "bottomk", "abs", "offset",
}

type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
			Definition string          `json:"definition"`
			Multi      bool            `json:"multi"`
			IncludeAll bool            `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasource              `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T, path string) (dashboard, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d), path)
	return d, b
}

func TestDashboardCopiesAreIdentical(t *testing.T) {
	t.Parallel()
	_, a := loadDashboard(t, dashboardCopies[0])
	_, b := loadDashboard(t, dashboardCopies[1])
	require.Equal(t, string(a), string(b), "charts/runner-manager/dashboards/runner-manager.json and deploy/grafana/runner-manager.json must be the same file")
}

func TestDashboardStructure(t *testing.T) {
	t.Parallel()
	d, _ := loadDashboard(t, dashboardCopies[0])
	require.Equal(t, 39, d.SchemaVersion)
	require.Equal(t, "runner-manager", d.UID)

	vars := map[string]int{}
	for i, v := range d.Templating.List {
		vars[v.Name] = i
	}
	require.Contains(t, vars, "datasource")
	ds := d.Templating.List[vars["datasource"]]
	require.Equal(t, "datasource", ds.Type)
	require.JSONEq(t, `"prometheus"`, string(ds.Query))
	require.Contains(t, vars, "group")
	g := d.Templating.List[vars["group"]]
	require.Equal(t, "query", g.Type)
	require.Equal(t, &datasource{Type: "prometheus", UID: "${datasource}"}, g.Datasource)
	require.True(t, g.Multi && g.IncludeAll)
	checkExpr(t, "variable group", strings.TrimSuffix(strings.TrimPrefix(g.Definition, "label_values("), ", group)"))

	ids := map[int]bool{}
	exprs := 0
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			require.False(t, ids[p.ID], "panel id %d used twice", p.ID)
			ids[p.ID] = true
			require.NotEmpty(t, p.Title, "panel %d has a title", p.ID)
			require.Positive(t, p.GridPos.W, "panel %q has a width", p.Title)
			require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, "panel %q fits the grid", p.Title)
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			require.Equal(t, &datasource{Type: "prometheus", UID: "${datasource}"}, p.Datasource, "panel %q uses ${datasource}", p.Title)
			require.NotEmpty(t, p.Targets, "panel %q has queries", p.Title)
			for _, tg := range p.Targets {
				require.Equal(t, p.Datasource, tg.Datasource, "panel %q", p.Title)
				require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
				checkExpr(t, p.Title, tg.Expr)
				exprs++
			}
		}
	}
	walk(d.Panels)
	require.Greater(t, exprs, 20)
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers   = regexp.MustCompile(`\{[^}]*\}`)
	ranges     = regexp.MustCompile(`\[[^\]]*\]`)
	grouping   = regexp.MustCompile(`\b(by|without|on|ignoring)\s*\([^)]*\)`)
	identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// metricNames returns the metric names an expression references: every
// identifier left once strings, label matchers, ranges and grouping clauses
// are removed, that is not a PromQL word.
func metricNames(expr string) []string {
	e := quoted.ReplaceAllString(expr, `""`)
	e = matchers.ReplaceAllString(e, "")
	e = ranges.ReplaceAllString(e, "")
	e = grouping.ReplaceAllString(e, "$1")
	var out []string
	for _, id := range identifier.FindAllString(e, -1) {
		if !slices.Contains(promqlWords, id) {
			out = append(out, id)
		}
	}
	return out
}

func checkExpr(t *testing.T, where, expr string) {
	t.Helper()
	names := metricNames(expr)
	require.NotEmpty(t, names, "%s: %q references no metric", where, expr)
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && slices.Contains(dashboardHistograms, b) {
				base = b
			}
		}
		require.Contains(t, dashboardMetrics, base, "%s: %q uses a metric outside the list", where, expr)
		if slices.Contains(dashboardHistograms, base) {
			require.NotEqual(t, base, n, "%s: a histogram is queried through its _bucket, _sum or _count series", where)
		}
	}
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`histogram_quantile(0.95, sum by (group, le) (rate(runner_manager_scheduler_job_wait_seconds_bucket{group=~"$group"}[$__rate_interval])))`: {"runner_manager_scheduler_job_wait_seconds_bucket"},
		`sum by (state) (runner_manager_scheduler_runners{group=~"a|b", state="idle"})`:                                                            {"runner_manager_scheduler_runners"},
		`min by (job) (runner_manager_github_rate_limit_remaining) / on (job) runner_manager_x`:                                                    {"runner_manager_github_rate_limit_remaining", "runner_manager_x"},
		`sum(increase(runner_manager_stream_dead_lettered_total[$__range]))`:                                                                       {"runner_manager_stream_dead_lettered_total"},
	} {
		require.Equal(t, want, metricNames(expr), expr)
	}
}
