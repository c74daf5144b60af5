package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi time.Duration
		err    bool
	}{
		{in: "5s-30s", lo: 5 * time.Second, hi: 30 * time.Second},
		{in: "2s", lo: 2 * time.Second, hi: 2 * time.Second},
		{in: "30s-5s", err: true},
		{in: "x", err: true},
	}
	for _, tt := range tests {
		lo, hi, err := parseRange(tt.in)
		if tt.err {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, []time.Duration{tt.lo, tt.hi}, []time.Duration{lo, hi}, tt.in)
	}
}

func TestProbe(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ok.Close()
	require.NoError(t, run([]string{"--probe", ok.URL}))
	bad := httptest.NewServer(http.NotFoundHandler())
	defer bad.Close()
	require.Error(t, run([]string{"--probe", bad.URL}))
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("FAKEGITHUB_SIMULATE_DURATION", "bogus")
	t.Setenv("FAKEGITHUB_SIMULATE", "1")
	t.Setenv("FAKEGITHUB_LISTEN", "127.0.0.1:0")
	require.ErrorContains(t, run(nil), `simulate-duration "bogus"`)
}
