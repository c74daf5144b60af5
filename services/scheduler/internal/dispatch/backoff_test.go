package dispatch

import (
	"testing"
	"time"
)

// The delete retries of a runner back off: 10 s doubling, at most 10 min.
func TestDeleteBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {6, 320 * time.Second},
		{7, 10 * time.Minute}, {100, 10 * time.Minute}, {0, 10 * time.Second},
	} {
		if got := DeleteBackoff(tc.failures); got != tc.want {
			t.Errorf("DeleteBackoff(%d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
}
