package service

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runner-manager/runner-manager/libs/config"
)

// NewRedis returns the Redis client of the configuration: Sentinel when
// redis.sentinel_master and redis.sentinel_addrs are set, otherwise redis.url
// (overridden by RM_REDIS_URL). RM_REDIS_PASSWORD, when set, wins over a
// password in the URL. The client reconnects by itself when Redis returns.
func NewRedis(cfg *config.Config) (redis.UniversalClient, error) {
	password := cfg.Secrets.RedisPassword.Value()
	if cfg.Redis.SentinelMaster != "" && len(cfg.Redis.SentinelAddrs) > 0 {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    cfg.Redis.SentinelMaster,
			SentinelAddrs: cfg.Redis.SentinelAddrs,
			Password:      password,
			DB:            cfg.Redis.DB,
			DialTimeout:   5 * time.Second,
			ReadTimeout:   5 * time.Second,
			WriteTimeout:  5 * time.Second,
			// See NewRedis below: deadlines of callers reach the socket.
			ContextTimeoutEnabled: true,
		}), nil
	}
	opt, err := redis.ParseURL(cfg.Redis.URL)
	if err != nil {
		// The URL may hold a password: name the setting, not its value.
		return nil, fmt.Errorf("redis.url (or RM_REDIS_URL) is not a valid redis:// URL")
	}
	if password != "" {
		opt.Password = password
	}
	opt.DialTimeout = 5 * time.Second
	// Blocking stream reads set their own deadlines; plain commands fail fast
	// so that a dead Redis turns into a 503 and a retry, not a hang.
	opt.ReadTimeout = 5 * time.Second
	opt.WriteTimeout = 5 * time.Second
	// Honour the caller's context deadline on the socket: the ingress bounds
	// its publish to 2 s so that a Redis that hangs answers 503 in time.
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}
