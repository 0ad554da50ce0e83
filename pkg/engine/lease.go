package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"coffer/pkg/bus"
)

// LeaseBucket is the JetStream KV bucket holding one key per writer partition.
const LeaseBucket = "coffer_leases"

// ErrLeaseLost is returned by Run when another writer took this writer's
// partition: two writers with separate logs must never serve the same wallets.
var ErrLeaseLost = errors.New("partition lease lost to another writer")

// lease is a partition lease: a KV key whose value is the holder's id. The
// bucket's TTL removes a key its holder stopped renewing, so a crashed writer
// frees its partition after at most one TTL.
type lease struct {
	replicas int // of the lease bucket, when this writer creates it
	kv       jetstream.KeyValue
	key      string
	owner    string
	ttl      time.Duration
	rev      uint64
	log      *slog.Logger
}

func leaseKey(partition string) string { return "wallet_writer.partition." + partition }

// acquireLease waits until this writer holds the partition's lease, or ctx ends.
func acquireLease(ctx context.Context, js jetstream.JetStream, partition, owner string, ttl time.Duration, replicas int, log *slog.Logger) (*lease, error) {
	l := &lease{key: leaseKey(partition), owner: owner, ttl: ttl, replicas: replicas, log: log}
	waiting := false
	for {
		err := l.tryAcquire(ctx, js)
		if err == nil {
			log.Info("partition lease acquired", "partition", partition, "owner", owner, "ttl", ttl.String())
			return l, nil
		}
		if !waiting || !errors.Is(err, jetstream.ErrKeyExists) {
			log.Warn("waiting for partition lease", "partition", partition, "err", err)
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ttl / 4):
		}
	}
}

func (l *lease) tryAcquire(ctx context.Context, js jetstream.JetStream) error {
	if l.kv == nil {
		kv, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
			Bucket:      LeaseBucket,
			Description: "wallet_writer partition leases",
			TTL:         l.ttl,
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    max(1, l.replicas),
		})
		if err != nil {
			return fmt.Errorf("lease bucket: %w", err)
		}
		l.kv = kv
	}
	rev, err := l.kv.Create(ctx, l.key, []byte(l.owner))
	if err == nil {
		l.rev = rev
		return nil
	}
	// After a NATS restart the key may still name us: adopt it.
	if e, gerr := l.kv.Get(ctx, l.key); gerr == nil && string(e.Value()) == l.owner {
		l.rev = e.Revision()
		return nil
	}
	return err
}

// renew keeps the lease alive until ctx ends, and returns ErrLeaseLost as soon
// as another writer holds the key. While JetStream cannot be reached it keeps
// trying: no other writer can take the key then either.
func (l *lease) renew(ctx context.Context) error {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rev, err := l.kv.Update(ctx, l.key, []byte(l.owner), l.rev)
		if err == nil {
			l.rev = rev
			continue
		}
		e, gerr := l.kv.Get(ctx, l.key)
		switch {
		case gerr == nil && string(e.Value()) == l.owner:
			l.rev = e.Revision()
		case gerr == nil:
			return fmt.Errorf("%w: key %s now held by %s", ErrLeaseLost, l.key, e.Value())
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			// Expired while we could not renew; nobody took it: take it back.
			if rev, cerr := l.kv.Create(ctx, l.key, []byte(l.owner)); cerr == nil {
				l.rev = rev
				l.log.Warn("partition lease had expired and was taken back", "key", l.key)
			} else if !errors.Is(cerr, jetstream.ErrKeyExists) {
				l.log.Warn("cannot renew partition lease", "key", l.key, "err", cerr)
			}
		default:
			l.log.Warn("cannot renew partition lease", "key", l.key, "err", err)
		}
	}
}

// release frees the partition at once for the next writer.
func (l *lease) release(ctx context.Context) {
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev)); err != nil {
		l.log.Warn("cannot release partition lease; it expires by itself", "key", l.key, "ttl", l.ttl.String(), "err", err)
		return
	}
	l.log.Info("partition lease released", "key", l.key)
}
