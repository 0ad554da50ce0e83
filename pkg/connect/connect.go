// Package connect opens the services' connections to NATS and Redis the one
// way every Coffer service wants them: retrying and reconnecting forever, and
// logging each change of state.
package connect

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// NATS connects to url as name. If the server is not there yet the returned
// connection keeps trying in the background, and after a disconnect it
// reconnects forever, buffering what is published meanwhile.
func NATS(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats error", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", url, err)
	}
	return nc, nil
}

// Redis returns a client for url. go-redis
// dials lazily and redials on every command, so a Redis that is down now is
// used as soon as it is back.
//
// One server: redis://host:6379/0 (rediss:// for TLS, unix:///path). A
// primary found through Sentinel: the sentinels' addresses and the
// primary's name, redis://sentinel-1:26379/0?master_name=coffer&addr=sentinel-2:26379;
// the client follows a failover by itself. A Redis Cluster: any of its
// nodes, redis-cluster://node-1:6379?addr=node-2:6379 (rediss-cluster://
// for TLS).
func Redis(url string) (redis.UniversalClient, error) {
	if rest, ok := strings.CutPrefix(url, "redis-cluster://"); ok || strings.HasPrefix(url, "rediss-cluster://") {
		u := "redis://" + rest
		if !ok {
			u = "rediss://" + strings.TrimPrefix(url, "rediss-cluster://")
		}
		opt, err := redis.ParseClusterURL(u)
		if err != nil {
			return nil, fmt.Errorf("redis url %q: %w", url, err)
		}
		failFast(&opt.MaxRetries, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		return redis.NewClusterClient(opt), nil
	}
	if strings.Contains(url, "master_name=") {
		opt, err := redis.ParseFailoverURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis url %q: %w", url, err)
		}
		failFast(&opt.MaxRetries, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		return redis.NewFailoverClient(opt), nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url %q: %w", url, err)
	}
	failFast(&opt.MaxRetries, &opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
	return redis.NewClient(opt), nil
}

// failFast sets the same limits on every kind of Redis client: one retry,
// a second to connect, two to read or write. A slow Redis is a failed push
// the writer retries, never a request left hanging.
func failFast(maxRetries *int, dial, read, write *time.Duration) {
	*maxRetries, *dial, *read, *write = 1, time.Second, 2*time.Second, 2*time.Second
}

// Logger returns a JSON logger at level ("debug", "info", "warn", "error")
// whose every line names the service.
func Logger(w io.Writer, level, service string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("service", service), nil
}

// Drain lets what nc has in flight finish (subscriptions deliver what they
// hold, publications are flushed), then closes it, waiting at most timeout.
func Drain(nc *nats.Conn, timeout time.Duration) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return err
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return fmt.Errorf("nats drain: not done within %s", timeout)
	}
}
