package eventstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// stmtCache keeps one prepared statement per row count of a multi-row
// statement. SQLite then parses each shape once, not once a batch: parsing
// the idempotency lookup and the head upsert afresh took a tenth of the
// writer's CPU under load, all of it on the committer's path.
type stmtCache struct {
	db    *sql.DB
	text  func(rows int) string // the statement's SQL for rows rows
	mu    sync.Mutex
	stmts map[int]*sql.Stmt
}

func newStmtCache(db *sql.DB, text func(rows int) string) *stmtCache {
	return &stmtCache{db: db, text: text, stmts: map[int]*sql.Stmt{}}
}

// get returns the statement for rows rows, preparing it the first time.
// On a single-connection pool call it outside any transaction: preparing
// needs the connection the transaction holds.
func (c *stmtCache) get(ctx context.Context, rows int) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[rows]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, c.text(rows))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	c.stmts[rows] = st
	return st, nil
}

// close closes every statement prepared so far.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, st := range c.stmts {
		st.Close()
		delete(c.stmts, n)
	}
}
