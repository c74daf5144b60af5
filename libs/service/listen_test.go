package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var errDone = errors.New("test done")

// With metrics_listen set, /metrics is served on that listener only; the
// health endpoints are on both.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	for _, tc := range []struct {
		binary, section string
	}{
		{"ingress", "ingress"},
		{"scheduler", "scheduler"},
		{"provisioner-docker", "provisioner"},
	} {
		t.Run(tc.binary, func(t *testing.T) {
			srv := redistest.Start(t)
			setSecrets(t)
			t.Setenv("RM_REDIS_URL", srv.URL())
			main, metrics := freeAddr(t), freeAddr(t)
			cfg := validConfig + fmt.Sprintf("%s:\n  listen: %q\n  metrics_listen: %q\n", tc.section, main, metrics)
			type answer struct {
				code int
				body string
			}
			got := map[string]answer{}
			run := func(ctx context.Context, app *service.App) error {
				for _, base := range []string{"http://" + main, "http://" + metrics} {
					for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
						// Not require: this runs outside the test's goroutine.
						resp, err := http.Get(base + path)
						if err != nil {
							got[base+path] = answer{0, err.Error()}
							continue
						}
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						got[base+path] = answer{resp.StatusCode, string(b)}
					}
				}
				return errDone
			}
			var out, errOut bytes.Buffer
			code := service.Run(service.Options{Binary: tc.binary, Listen: func(*config.Config) string { return main }},
				[]string{"--config", writeFile(t, cfg)}, &out, &errOut, run)
			require.Equal(t, 1, code, errOut.String())
			require.Contains(t, errOut.String(), errDone.Error())

			require.Equal(t, http.StatusNotFound, got["http://"+main+"/metrics"].code, "/metrics leaves the main listener")
			require.Equal(t, http.StatusOK, got["http://"+metrics+"/metrics"].code)
			require.Contains(t, got["http://"+metrics+"/metrics"].body, `runner_manager_build_info{service="`+tc.binary+`"`)
			for _, base := range []string{"http://" + main, "http://" + metrics} {
				require.Equal(t, http.StatusOK, got[base+"/healthz"].code, base)
				require.Equal(t, http.StatusOK, got[base+"/readyz"].code, base)
			}
			require.True(t, strings.Contains(errOut.String(), metrics), "the metrics address is logged at start:\n%s", errOut.String())
		})
	}
}
