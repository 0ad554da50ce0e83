package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The Ensure functions make a JetStream stream, consumer or key-value bucket
// exist with a configuration, and change it only when it differs.
//
// nats.go's CreateOrUpdate* send an update first, every time, and nats-server
// (2.15.2) rewrites the store's configuration on every stream update without
// the lock a concurrent consumer create reads it under: wallet_writer's outbox
// and history_writer both ensure EVENTS while history_writer ensures its
// consumer, so each start of the suite was a data race inside the server (the
// race detector caught it in the e2e tests). A create with an equal
// configuration changes nothing on the server, so the usual start now writes
// nothing; an update is left for a configuration that really changed.

// EnsureStream creates the stream, or updates it if it exists with another
// configuration.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.UpdateStream(ctx, cfg)
	}
	return s, err
}

// EnsureConsumer creates the durable consumer, or updates it if it exists
// with another configuration.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.CreateConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return js.UpdateConsumer(ctx, stream, cfg)
	}
	return c, err
}

// EnsureKeyValue creates the bucket, or updates it if it exists with another
// configuration.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.UpdateKeyValue(ctx, cfg)
	}
	return kv, err
}

// RetryWait is how long a consumer of a stream waits to try again after
// waiting d the last time (0: it had not failed): 100 ms, doubling, and 5 s
// once a wait has reached it.
func RetryWait(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return 100 * time.Millisecond
	case d >= 5*time.Second:
		return 5 * time.Second
	}
	return 2 * d
}
