package service

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/config"
)

// Timeouts of every Redis client. Blocking stream reads set their own
// deadlines; plain commands fail fast so that a dead Redis turns into a 503
// and a retry, not a hang.
const (
	redisDialTimeout = 5 * time.Second
	redisIOTimeout   = 5 * time.Second
)

// NewRedis returns the Redis client of the configuration:
//
//   - Sentinel when redis.sentinel_master and redis.sentinel_addrs are set;
//   - Sentinel when the URL (redis.url, overridden by RM_REDIS_URL) has a
//     master_name query parameter: redis://[[user]:password@]s1:26379/0?master_name=m&addr=s2:26379.
//     The user and password of the URL are the Redis servers' (as in a plain
//     URL), not the Sentinels' as go-redis's ParseFailoverURL reads them;
//     rediss:// or tls=true turns TLS on; a password query parameter is refused;
//   - otherwise the plain URL.
//
// RM_REDIS_PASSWORD, when set, wins over a password in the URL; the
// Sentinels' own password is RM_REDIS_SENTINEL_PASSWORD, never in a URL.
// Errors name the setting, never the URL or a password. The client
// reconnects by itself when Redis returns.
func NewRedis(cfg *config.Config) (redis.UniversalClient, error) {
	password := cfg.Secrets.RedisPassword.Value()
	if cfg.Redis.SentinelMaster != "" && len(cfg.Redis.SentinelAddrs) > 0 {
		return newFailover("redis.sentinel_addrs", &redis.FailoverOptions{
			MasterName:       cfg.Redis.SentinelMaster,
			SentinelAddrs:    cfg.Redis.SentinelAddrs,
			Password:         password,
			SentinelPassword: cfg.Secrets.RedisSentinelPassword.Value(),
			DB:               cfg.Redis.DB,
		})
	}
	if isSentinelURL(cfg.Redis.URL) {
		opt, err := parseSentinelURL(cfg.Redis.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url (or RM_REDIS_URL) is not a valid Sentinel URL (redis://[[user]:password@]sentinel:26379/db?master_name=NAME&addr=sentinel2:26379): %w", err)
		}
		if password != "" {
			opt.Password = password
		}
		opt.SentinelPassword = cfg.Secrets.RedisSentinelPassword.Value()
		return newFailover("the Sentinels of redis.url (or RM_REDIS_URL)", opt)
	}
	opt, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		// The URL may hold a password: name the setting, not its value.
		return nil, fmt.Errorf("redis.url (or RM_REDIS_URL) is not a valid redis:// URL")
	}
	if password != "" {
		opt.Password = password
	}
	opt.DialTimeout = redisDialTimeout
	opt.ReadTimeout = redisIOTimeout
	opt.WriteTimeout = redisIOTimeout
	// Honour the caller's context deadline on the socket: the ingress bounds
	// its publish to 2 s so that a Redis that hangs answers 503 in time.
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}

// newFailover returns the Sentinel client of opt, after asking the
// Sentinels once for the master: a Sentinel that refuses the password is a
// configuration error, reported now and clearly (the client itself would
// only retry until its caller's deadline). Sentinels that cannot be reached
// are not: the client keeps trying them, and /readyz says so.
func newFailover(what string, opt *redis.FailoverOptions) (redis.UniversalClient, error) {
	opt.DialTimeout = redisDialTimeout
	opt.ReadTimeout = redisIOTimeout
	opt.WriteTimeout = redisIOTimeout
	// See NewRedis: deadlines of callers reach the socket.
	opt.ContextTimeoutEnabled = true
	if err := checkSentinelAuth(opt); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return redis.NewFailoverClient(opt), nil
}

// checkSentinelAuth asks each Sentinel for the master until one answers. It
// returns an error only when none answered and one refused the password.
func checkSentinelAuth(opt *redis.FailoverOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), redisDialTimeout)
	defer cancel()
	var refused []string
	for _, addr := range opt.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{
			Addr:        addr,
			Username:    opt.SentinelUsername,
			Password:    opt.SentinelPassword,
			TLSConfig:   opt.TLSConfig,
			DialTimeout: 2 * time.Second,
			ReadTimeout: 2 * time.Second,
			MaxRetries:  -1,
		})
		err := sc.GetMasterAddrByName(ctx, opt.MasterName).Err()
		_ = sc.Close()
		if err == nil {
			return nil
		}
		if isAuthError(err) {
			refused = append(refused, fmt.Sprintf("Sentinel %s: %s", addr,
				Redact(err.Error(), opt.SentinelPassword, opt.Password)))
		}
	}
	if len(refused) == 0 {
		return nil
	}
	hint := "set RM_REDIS_SENTINEL_PASSWORD to the Sentinels' requirepass"
	if opt.SentinelPassword != "" {
		hint = "RM_REDIS_SENTINEL_PASSWORD is not the Sentinels' requirepass"
	}
	return fmt.Errorf("the Sentinels refuse the password (%s): %s", hint, strings.Join(refused, "; "))
}

func isAuthError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR AUTH", "invalid password"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// isSentinelURL tells whether raw is the Sentinel URL form (the form that
// config validation accepts through go-redis's ParseFailoverURL).
func isSentinelURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Query().Has("master_name")
}

// parseSentinelURL reads the Sentinel URL form. Its errors never contain the
// URL's credentials: they are taken out before go-redis sees the URL.
func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("does not parse")
	}
	var username, password string
	if u.User != nil {
		username = u.User.Username()
		password, _ = u.User.Password()
		u.User = nil
	}
	q := u.Query()
	for _, k := range []string{"password", "sentinel_password", "sentinel_username"} {
		if q.Has(k) {
			return nil, fmt.Errorf("the %s query parameter is refused: give the Redis password in the URL's user information or RM_REDIS_PASSWORD, the Sentinels' in RM_REDIS_SENTINEL_PASSWORD", k)
		}
	}
	if q.Get("master_name") == "" {
		return nil, errors.New("master_name is empty: give the name the Sentinels know the master by")
	}
	if q.Has("tls") {
		switch q.Get("tls") {
		case "true":
			u.Scheme = "rediss"
		case "false":
		default:
			return nil, errors.New("tls must be true or false")
		}
		q.Del("tls")
		u.RawQuery = q.Encode()
	}
	opt, err := redis.ParseFailoverURL(u.String())
	if err != nil {
		// The credentials were removed: the reason names an option, an
		// address or a number, never a password. Query values may still
		// hold what a user mistyped: keep only go-redis's reason.
		return nil, errors.New(Redact(err.Error(), password))
	}
	// The user information is the Redis servers', not the Sentinels'.
	opt.SentinelUsername, opt.SentinelPassword = "", ""
	if username != "" {
		opt.Username = username
	}
	opt.Password = password
	if opt.TLSConfig != nil {
		// go-redis names the first Sentinel as the server of every
		// connection; each connection checks the host it dials instead.
		opt.TLSConfig.ServerName = ""
	}
	return opt, nil
}

var urlCredentials = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)

// Redact returns s with the credentials of any URL in it, and every
// non-empty secret given, replaced by "[redacted]".
func Redact(s string, secrets ...string) string {
	s = urlCredentials.ReplaceAllString(s, "${1}[redacted]@")
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// redisSecrets are the Redis passwords of the configuration, scrubbed from
// every error a service logs about Redis.
func redisSecrets(cfg *config.Config) []string {
	out := []string{cfg.Secrets.RedisPassword.Value(), cfg.Secrets.RedisSentinelPassword.Value()}
	if u, err := url.Parse(cfg.Redis.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	return out
}
