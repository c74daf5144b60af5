package service_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

const redisPassword = "hunter2-redis-password-value"

// /readyz names the failing check, never its error: an error may carry a
// URL with its password. The error goes to the log, without the password.
func TestReadyzNamesOnlyTheFailingCheck(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	setSecrets(t)
	t.Setenv("RM_REDIS_URL", "redis://:"+redisPassword+"@"+srv.Addr()+"/0")
	cfg, err := config.Parse([]byte(validConfig), mustSecrets(t))
	require.NoError(t, err)
	var logs bytes.Buffer
	app := service.NewApp("scheduler", cfg, slog.New(slog.NewJSONHandler(&logs, nil)), rdb)
	app.AddReadiness("consumer-group", func(context.Context) error {
		return errors.New("dial redis://default:" + redisPassword + "@10.1.2.3:6379/0: connection refused")
	})
	h := httptest.NewServer(app.HTTP)
	t.Cleanup(h.Close)

	code, body := httpGet(t, h.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready\nconsumer-group: not ready\n", body)
	require.NotContains(t, body, redisPassword)
	require.NotContains(t, body, "refused", "no error text in the answer")

	require.Contains(t, logs.String(), "connection refused", "the error goes to the log")
	require.Contains(t, logs.String(), "consumer-group")
	require.NotContains(t, logs.String(), redisPassword, "the log has no password either")

	// Redis down: the answer names the check only.
	srv.Stop()
	code, body = httpGet(t, h.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "redis: not ready\n")
	require.NotContains(t, body, srv.Addr(), "no Redis error text in the answer")
	require.NotContains(t, logs.String(), redisPassword)
}

// A Redis URL that does not parse, or a Sentinel URL with a password query
// parameter, stops the service at start with an error that names the
// setting but not the password, in the error and in the log.
func TestNewRedisErrorsCarryNoPassword(t *testing.T) {
	for name, url := range map[string]string{
		"sentinel password in the query": "redis://s1:26379/0?master_name=mymaster&password=" + redisPassword,
		"sentinel_password in the query": "redis://s1:26379/0?master_name=mymaster&sentinel_password=" + redisPassword,
		"sentinel without a master name": "redis://:" + redisPassword + "@s1:26379/0?master_name=&addr=s2:26379",
		"sentinel with a bad addr":       "redis://:" + redisPassword + "@s1:26379/0?master_name=m&addr=" + redisPassword,
		"sentinel with a bad option":     "redis://:" + redisPassword + "@s1:26379/0?master_name=m&" + redisPassword + "=1",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := &config.Config{Redis: config.Redis{URL: url}}
			rdb, err := service.NewRedis(cfg)
			if rdb != nil {
				_ = rdb.Close()
			}
			require.Error(t, err)
			require.NotContains(t, err.Error(), redisPassword)
			require.Contains(t, err.Error(), "RM_REDIS_URL")

			setSecrets(t)
			t.Setenv("RM_REDIS_URL", url)
			var out, errOut bytes.Buffer
			code := service.Run(service.Options{Binary: "scheduler", Listen: func(*config.Config) string { return "127.0.0.1:0" }},
				[]string{"--config", writeFile(t, validConfig)}, &out, &errOut, noRun)
			require.Equal(t, 1, code)
			require.NotContains(t, errOut.String(), redisPassword)
			require.True(t, strings.Contains(errOut.String(), "RM_REDIS_URL"), errOut.String())
		})
	}
}
