// Package e2e holds the end-to-end tests of the three Coffer services wired
// together as they run in production: each service's RunService on a real
// in-process nats-server with JetStream, a real redis-server process and
// SQLite files in a temp dir, driven through HTTP.
package e2e
