package bench

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/keys"
)

func TestIDTime(t *testing.T) {
	tests := []struct {
		id      string
		want    time.Time
		wantErr bool
	}{
		{id: "1700000000123-0", want: time.UnixMilli(1700000000123)},
		{id: "1700000000123-42", want: time.UnixMilli(1700000000123)},
		{id: "5", want: time.UnixMilli(5)},
		{id: "x-1", wantErr: true},
		{id: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := IDTime(tt.id)
		if tt.wantErr {
			require.Error(t, err, tt.id)
			continue
		}
		require.NoError(t, err, tt.id)
		require.True(t, got.Equal(tt.want), "%s: %v", tt.id, got)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0.1, time.Millisecond},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Percentile(d, tt.p), "p%v", tt.p)
	}
	require.Zero(t, Percentile(nil, 99))
	require.Equal(t, 7*time.Millisecond, Percentile([]time.Duration{7 * time.Millisecond}, 99))
}

func TestLatenciesPairEachJobWithItsFirstCommand(t *testing.T) {
	events := map[int64]string{1: "1000-0", 2: "1000-1", 3: "1005-0"}
	commands := map[int64][]string{1: {"1002-0", "1009-0"}, 2: {"1010-0"}}
	lat, missing, err := Latencies(events, commands)
	require.NoError(t, err)
	require.Equal(t, 1, missing)
	require.Equal(t, []time.Duration{2 * time.Millisecond, 10 * time.Millisecond}, lat)
}

func TestKeyKind(t *testing.T) {
	k := keys.New("m")
	tests := map[string]string{
		k.Events():              "stream:events",
		k.Results():             "stream:results",
		k.Provision("docker"):   "stream:provision",
		k.Runner("m-g-abc"):     "runner",
		k.Job(42):               "job",
		k.Delivery("guid"):      "delivery",
		k.GroupRunners("g"):     "group:runners",
		k.GroupDemand("g"):      "group:demand",
		k.GroupFree("g"):        "group:free",
		k.Lease("reconcile"):    "other:lease",
		"{other}:runner:x":      "other",
		k.GroupRunners("a:b:c"): "group:runners",
		k.GitHubGroup("g"):      "other:ghgroup",
	}
	for key, want := range tests {
		require.Equal(t, want, KeyKind(k, key), key)
	}
}

func TestRSSAndCPUOfThisProcess(t *testing.T) {
	rss, err := RSS(os.Getpid())
	require.NoError(t, err)
	require.Greater(t, rss, int64(1<<20), "a Go test binary holds more than 1 MiB")
	_, err = CPU(os.Getpid())
	require.NoError(t, err)
	_, err = RSS(-1)
	require.Error(t, err)
}
