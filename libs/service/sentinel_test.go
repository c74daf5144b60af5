package service_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runner-manager/runner-manager/libs/config"
	"github.com/runner-manager/runner-manager/libs/service"
	"github.com/runner-manager/runner-manager/libs/testutil/redistest"
)

const (
	masterPassword   = "master-pw-7c1d9e"
	sentinelPassword = "sentinel-pw-4f2a8b"
)

// sentinelURL is the URL form with the master's password in the user
// information and a second (dead) Sentinel address, to show that the client
// goes through the list.
func sentinelURL(s *redistest.Sentinel, userinfo string) string {
	u := url.URL{Scheme: "redis", Host: s.SentinelAddr, Path: "/0",
		RawQuery: url.Values{"master_name": {s.MasterName}, "addr": {"127.0.0.1:1"}}.Encode()}
	if userinfo != "" {
		u.User = url.UserPassword("", userinfo)
	}
	return u.String()
}

func sentinelConfig(url, redisPassword, sentinelPassword string) *config.Config {
	return &config.Config{
		Redis: config.Redis{URL: url},
		Secrets: config.Secrets{
			RedisPassword:         config.Secret(redisPassword),
			RedisSentinelPassword: config.Secret(sentinelPassword),
		},
	}
}

// NewRedis opens the Sentinel URL form against a real redis-sentinel that
// has its own password and a master with another one.
func TestNewRedisSentinelURL(t *testing.T) {
	s := redistest.StartSentinel(t, masterPassword, sentinelPassword)
	for name, cfg := range map[string]*config.Config{
		"password in the URL":                 sentinelConfig(sentinelURL(s, masterPassword), "", sentinelPassword),
		"password in RM_REDIS_PASSWORD":       sentinelConfig(sentinelURL(s, ""), masterPassword, sentinelPassword),
		"RM_REDIS_PASSWORD wins over the URL": sentinelConfig(sentinelURL(s, "stale"), masterPassword, sentinelPassword),
		"explicit fields": {
			Redis:   config.Redis{SentinelMaster: s.MasterName, SentinelAddrs: []string{s.SentinelAddr}},
			Secrets: config.Secrets{RedisPassword: masterPassword, RedisSentinelPassword: sentinelPassword},
		},
	} {
		t.Run(name, func(t *testing.T) {
			rdb, err := service.NewRedis(cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = rdb.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			key := redistest.NewName("sentinel")
			require.NoError(t, rdb.Set(ctx, key, "through the master", time.Minute).Err())
			v, err := rdb.Get(ctx, key).Result()
			require.NoError(t, err)
			require.Equal(t, "through the master", v)
		})
	}
}

// A Sentinel that refuses the password stops NewRedis with a clear error
// that names the variable and holds no password. A wrong master password
// fails the first command with Redis's WRONGPASS, without a password too.
func TestNewRedisSentinelWrongPassword(t *testing.T) {
	s := redistest.StartSentinel(t, masterPassword, sentinelPassword)
	passwords := []string{masterPassword, sentinelPassword, "not-the-sentinel-pw", "not-the-master-pw"}
	noPassword := func(t *testing.T, err error) {
		t.Helper()
		for _, pw := range passwords {
			require.False(t, strings.Contains(err.Error(), pw), "error %q holds a password", err)
		}
	}
	for name, tc := range map[string]struct {
		cfg  *config.Config
		want []string
	}{
		"wrong sentinel password": {sentinelConfig(sentinelURL(s, masterPassword), "", "not-the-sentinel-pw"),
			[]string{"WRONGPASS", "RM_REDIS_SENTINEL_PASSWORD is not the Sentinels' requirepass", "RM_REDIS_URL"}},
		"no sentinel password": {sentinelConfig(sentinelURL(s, masterPassword), "", ""),
			[]string{"NOAUTH", "set RM_REDIS_SENTINEL_PASSWORD"}},
		"explicit fields": {&config.Config{
			Redis:   config.Redis{SentinelMaster: s.MasterName, SentinelAddrs: []string{s.SentinelAddr}},
			Secrets: config.Secrets{RedisPassword: masterPassword, RedisSentinelPassword: "not-the-sentinel-pw"},
		}, []string{"WRONGPASS", "redis.sentinel_addrs"}},
	} {
		t.Run(name, func(t *testing.T) {
			rdb, err := service.NewRedis(tc.cfg)
			if rdb != nil {
				_ = rdb.Close()
			}
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			noPassword(t, err)
		})
	}

	t.Run("wrong master password", func(t *testing.T) {
		rdb, err := service.NewRedis(sentinelConfig(sentinelURL(s, "not-the-master-pw"), "", sentinelPassword))
		require.NoError(t, err, "the Sentinels accept their password; the master is checked by the first command")
		t.Cleanup(func() { _ = rdb.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = rdb.Ping(ctx).Err()
		require.Error(t, err)
		require.Contains(t, err.Error(), "WRONGPASS")
		noPassword(t, err)
	})
}

// rediss:// and tls=true speak TLS to the Sentinels; redis:// does not. A
// loopback listener looks at the first byte NewRedis sends: 0x16 opens a TLS
// handshake, '*' a RESP command.
func TestNewRedisSentinelTLSOption(t *testing.T) {
	for raw, wantTLS := range map[string]bool{
		"rediss://:pw@ADDR/0?master_name=m":         true,
		"redis://:pw@ADDR/0?master_name=m&tls=true": true,
		"redis://:pw@ADDR/0?master_name=m":          false,
	} {
		t.Run(raw, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { _ = ln.Close() })
			first := make(chan byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				b := make([]byte, 1)
				if _, err := io.ReadFull(c, b); err == nil {
					first <- b[0]
				}
			}()
			rdb, err := service.NewRedis(&config.Config{Redis: config.Redis{URL: strings.Replace(raw, "ADDR", ln.Addr().String(), 1)}})
			require.NoError(t, err, "a Sentinel that does not answer is not a configuration error")
			_ = rdb.Close()
			select {
			case b := <-first:
				require.Equal(t, wantTLS, b == 0x16, "first byte %q", b)
			case <-time.After(10 * time.Second):
				t.Fatal("NewRedis did not dial the Sentinel")
			}
		})
	}
	_, err := service.NewRedis(&config.Config{Redis: config.Redis{URL: "redis://:pw@127.0.0.1:1/0?master_name=m&tls=maybe"}})
	require.ErrorContains(t, err, "tls must be true or false")
}
