// Package faults is Coffer's fault suite. It builds the real binaries, runs
// nats-server, redis-server and the three services as separate processes on
// loopback, drives them with clients that retry every operation with its
// Idempotency-Key until the answer is definite, injects faults (kill -9 of
// each process, FLUSHALL, a paused writer, a SQLite file held by another
// process), and then checks that every acknowledged operation is in SQLite
// exactly once, every balance equals its acknowledged sum, Redis equals
// SQLite, and the history holds every event exactly once.
//
// The default run is short. The long run:
//
//	./build.sh faults            # go test -v ./services/faults -args -cycles=300
package faults
