package harness

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSumSamplesByLabel(t *testing.T) {
	text := `# HELP runner_manager_bench_runner_exits_total Fake runners that ended.
# TYPE runner_manager_bench_runner_exits_total counter
runner_manager_bench_runner_exits_total{reason="success"} 3
runner_manager_bench_runner_exits_total{reason="stopped"} 1
runner_manager_bench_runner_exits_total{group="g",reason="jit: \"bad\", {x}\nnext"} 2
runner_manager_bench_runner_exits_total_other{reason="success"} 100
runner_manager_bench_instances 4
`
	by, err := sumSamples(strings.NewReader(text), "runner_manager_bench_runner_exits_total", "reason")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"success": 3, "stopped": 1, "jit: \"bad\", {x}\nnext": 2}, by)

	all, err := sumSamples(strings.NewReader(text), "runner_manager_bench_runner_exits_total", "")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"": 6}, all)

	n, err := sumSamples(strings.NewReader(text), "runner_manager_bench_instances", "")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"": 4}, n)
}
