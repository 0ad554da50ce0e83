// Package readmodel is the Redis projection of every wallet: what the writer
// pushes after each commit and what wallet_server reads.
//
// Keys, per wallet:
//
//	wallet.<id>           the state as JSON: {"wallet_id","balance","version","updated_at"}
//	wallet.<id>.tx        sorted set of applied transactions, score = version
//	wallet.<id>.rejected  sorted set of rejected debits, score = version
//
// The state key never holds the history, so reading a balance costs one GET
// however long the wallet's history is. Every push goes through one Lua script
// that sets the state only when its version is higher than the stored one, so
// a late or repeated push can never move a wallet backwards.
package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"coffer/pkg/wallet"
)

// Completeness markers. Redis is a projection that can lose everything (a
// restart without persistence, a FLUSHALL); a wallet missing from it must
// then not read as "never used, balance 0". CompleteKey holds one character
// per partition of the deployment, '1' once the writer of that partition has
// made Redis hold every wallet of its log ("1" with one partition, "0110"
// while partitions 0 and 3 of 4 are still re-projecting). Readers answer
// only when every character is '1'; a FLUSHALL removes the key, and each
// writer puts its own '1' back when it has re-projected its partition.
// RebuildingKey + ".p<index>" holds the token of a partition's rebuild.
const (
	CompleteKey = "coffer.readmodel.complete"
	// RebuildingKey shares CompleteKey's Redis Cluster slot (the braces),
	// so that the script finishing a rebuild may touch both.
	RebuildingKey = "{coffer.readmodel.complete}.rebuilding"
	// LayoutKey names the key layout the read model is written in; a
	// writer that finds another layout erases the read model and
	// projects it again.
	LayoutKey = "{coffer.readmodel.complete}.layout"
	Layout    = "2" // the sorted sets' keys carry a hash tag
)

// Part is one partition, Index of Of, as far as the completeness marker is
// concerned.
type Part struct{ Index, Of int }

// Whole is the one partition of an unpartitioned deployment.
var Whole = Part{Index: 0, Of: 1}

func (pt Part) rebuildingKey() string { return RebuildingKey + ".p" + strconv.Itoa(pt.Index) }

// complete reports whether a value of CompleteKey marks every partition
// complete.
func complete(v any) bool {
	s, ok := v.(string)
	return ok && s != "" && !strings.ContainsRune(s, '0')
}

// ErrIncomplete is returned by reads while the read model is being rebuilt.
var ErrIncomplete = errors.New("the read model is being rebuilt from the event log")

// View is a wallet's state as stored in Redis.
type View struct {
	WalletID  string    `json:"wallet_id"`
	Balance   int64     `json:"balance"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Change is what one push tells Redis about one wallet: its state after the
// newest event, and the transactions recorded since the last push.
type Change struct {
	View         View
	Transactions []wallet.Transaction
}

// StateKey is the Redis key of a wallet's state.
func StateKey(walletID string) string { return "wallet." + walletID }

// TransactionsKey is the Redis key of a wallet's applied transactions.
// Its braces put it in the same Redis Cluster slot as the state key
// wallet.<id>, so that one script may touch both.
func TransactionsKey(walletID string) string { return "{wallet." + walletID + "}.tx" }

// RejectedKey is the Redis key of a wallet's rejected debits.
func RejectedKey(walletID string) string { return "{wallet." + walletID + "}.rejected" }

// push keeps one invariant: a wallet whose state key says version V has
// every transaction up to V in its sorted sets. A push carries the state
// after its newest transaction and the transactions from version ARGV[2] on.
// It applies only if it continues what Redis holds (the stored version is at
// least ARGV[2]-1, a missing or unreadable state counting as 0); then it
// (re)places each transaction at its version, so a repeated push never
// stores a second copy, and sets the state if it is newer. A push that would
// leave a gap (Redis lost data) changes nothing and returns -1, and the
// writer re-pushes the wallet from what Redis has.
var push = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local curv = 0
if cur then
  -- A value that is not our JSON is overwritten, never a reason to fail.
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' then curv = tonumber(v.version) or 0 end
end
if curv < tonumber(ARGV[2]) - 1 then
  return -1
end
for i = 4, #ARGV, 3 do
  local key = KEYS[2]
  if ARGV[i] == 'r' then key = KEYS[3] end
  redis.call('ZREMRANGEBYSCORE', key, ARGV[i+1], ARGV[i+1])
  redis.call('ZADD', key, ARGV[i+1], ARGV[i+2])
end
if tonumber(ARGV[1]) > curv then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0
`)

// Projection reads and writes the read model.
type Projection struct {
	rdb   redis.UniversalClient
	reads chan balanceReq // nil: every Balance is its own round trip

	// With replicas, a push counts only once this many replicas have it
	// (WAIT), so that a failover to a replica never loses a state a writer
	// has already answered with.
	minReplicas int
	waitFor     time.Duration
	cluster     bool // a Redis Cluster: no command may span two slots
}

// RequireReplicas makes every Push wait until n replicas acknowledge it,
// at most timeout; a push they do not acknowledge in time fails, and the
// writer retries it as it retries any failed push.
func (p *Projection) RequireReplicas(n int, timeout time.Duration) {
	p.minReplicas, p.waitFor = n, timeout
}

// New returns a Projection over rdb.
func New(rdb redis.UniversalClient) *Projection {
	_, cluster := rdb.(*redis.ClusterClient)
	return &Projection{rdb: rdb, cluster: cluster}
}

// Ping checks that Redis answers.
func (p *Projection) Ping(ctx context.Context) error { return p.rdb.Ping(ctx).Err() }

// Push applies changes in one pipeline. It returns the ids of the wallets
// whose change did not continue what Redis holds and was not applied; the
// caller must push those from the version Redis has.
func (p *Projection) Push(ctx context.Context, changes []Change) (gaps []string, err error) {
	if len(changes) == 0 {
		return nil, nil
	}
	gaps, err = p.pushOnce(ctx, changes)
	if err != nil && redis.HasErrorPrefix(errors.Unwrap(err), "NOSCRIPT") {
		// A restarted Redis has lost its script cache: load and go again.
		if err := push.Load(ctx, p.rdb).Err(); err != nil {
			return nil, fmt.Errorf("push: load script: %w", err)
		}
		gaps, err = p.pushOnce(ctx, changes)
	}
	return gaps, err
}

func (p *Projection) pushOnce(ctx context.Context, changes []Change) ([]string, error) {
	pipe := p.rdb.Pipeline()
	results := make([]*redis.Cmd, len(changes))
	for i, c := range changes {
		if len(c.Transactions) == 0 {
			return nil, fmt.Errorf("push wallet %s: a change without transactions", c.View.WalletID)
		}
		state, err := json.Marshal(c.View)
		if err != nil {
			return nil, fmt.Errorf("push wallet %s: %w", c.View.WalletID, err)
		}
		args := make([]any, 0, 3+3*len(c.Transactions))
		args = append(args, c.View.Version, c.Transactions[0].Version, state)
		for _, t := range c.Transactions {
			member, err := json.Marshal(t)
			if err != nil {
				return nil, fmt.Errorf("push wallet %s: %w", c.View.WalletID, err)
			}
			kind := "t"
			if t.Type == wallet.DebitRejected {
				kind = "r"
			}
			args = append(args, kind, t.Version, member)
		}
		id := c.View.WalletID
		results[i] = push.EvalSha(ctx, pipe, []string{StateKey(id), TransactionsKey(id), RejectedKey(id)}, args...)
	}
	cmds, err := pipe.Exec(ctx)
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil {
			return nil, fmt.Errorf("push %d wallets: %w", len(changes), cerr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("push %d wallets: %w", len(changes), err)
	}
	var gaps []string
	for i, r := range results {
		if n, _ := r.Int(); n < 0 {
			gaps = append(gaps, changes[i].View.WalletID)
		}
	}
	if p.minReplicas > 0 {
		n, err := p.rdb.Do(ctx, "WAIT", p.minReplicas, p.waitFor.Milliseconds()).Int64()
		if err != nil {
			return nil, fmt.Errorf("push %d wallets: wait for replicas: %w", len(changes), err)
		}
		if n < int64(p.minReplicas) {
			return nil, fmt.Errorf("push %d wallets: %d of %d replicas acknowledged within %s", len(changes), n, p.minReplicas, p.waitFor)
		}
	}
	return gaps, nil
}

// Balance returns the stored state of walletID. In a complete read model, a
// wallet Redis does not know is a wallet nobody has used: balance 0, version
// 0, zero UpdatedAt. It reads the state and the completeness marker in one
// MGET.
func (p *Projection) Balance(ctx context.Context, walletID string) (View, error) {
	vals, err := p.mget(ctx, walletID)
	if err != nil {
		return View{}, fmt.Errorf("balance of wallet %s: %w", walletID, err)
	}
	if !complete(vals[1]) {
		return View{}, ErrIncomplete
	}
	state, ok := vals[0].(string)
	if !ok {
		return View{WalletID: walletID}, nil
	}
	v, err := decodeView([]byte(state))
	if err != nil {
		return View{}, fmt.Errorf("balance of wallet %s: stored state %q: %w", walletID, state, err)
	}
	return v, nil
}

// BeginRebuild notes that the writer of part starts comparing Redis with
// its log, under token; FinishRebuild needs the same token.
func (p *Projection) BeginRebuild(ctx context.Context, part Part, token string) error {
	return p.rdb.Set(ctx, part.rebuildingKey(), token, 0).Err()
}

// finish marks one partition complete only if its rebuild marker still
// holds the caller's token: a FLUSHALL during the rebuild removed it, and
// then what was compared before the flush proves nothing. A marker made for
// another partition count starts over from all '0'. It also records the
// key layout the model is written in.
var finish = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local n, i = tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('GET', KEYS[2])
if not v or #v ~= n then
  v = string.rep('0', n)
end
redis.call('SET', KEYS[2], string.sub(v, 1, i) .. '1' .. string.sub(v, i + 2))
redis.call('SET', KEYS[3], ARGV[4])
redis.call('DEL', KEYS[1])
return 1
`)

// FinishRebuild marks part complete if nothing erased Redis since
// BeginRebuild(part, token), and reports whether it did.
func (p *Projection) FinishRebuild(ctx context.Context, part Part, token string) (bool, error) {
	n, err := finish.Run(ctx, p.rdb, []string{part.rebuildingKey(), CompleteKey, LayoutKey}, token, part.Of, part.Index, Layout).Int()
	if err != nil {
		return false, fmt.Errorf("finish rebuild: %w", err)
	}
	return n == 1, nil
}

// IsComplete reports whether the marker says part is complete.
func (p *Projection) IsComplete(ctx context.Context, part Part) (bool, error) {
	v, err := p.rdb.Get(ctx, CompleteKey).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(v) == part.Of && v[part.Index] == '1', nil
}

// Versions returns the stored version of each wallet, 0 for unknown wallets,
// in one pipeline.
func (p *Projection) Versions(ctx context.Context, walletIDs []string) ([]int64, error) {
	pipe := p.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(walletIDs))
	for i, id := range walletIDs {
		gets[i] = pipe.Get(ctx, StateKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("versions of %d wallets: %w", len(walletIDs), err)
	}
	out := make([]int64, len(walletIDs))
	for i, g := range gets {
		b, err := g.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("version of wallet %s: %w", walletIDs[i], err)
		}
		v, err := decodeView(b)
		if err != nil {
			// A state that cannot be read is as good as none: re-push it.
			continue
		}
		out[i] = v.Version
	}
	return out, nil
}

// Page is one page of a wallet's transactions, newest first. Next is the
// cursor for the following page, 0 when there is none.
type Page struct {
	Transactions []wallet.Transaction
	Next         int64
}

// Transactions returns up to limit transactions with version < before (0
// means from the newest), newest first, with rejected debits when asked.
func (p *Projection) Transactions(ctx context.Context, walletID string, before int64, limit int, withRejected bool) (Page, error) {
	max := "+inf"
	if before > 0 {
		max = "(" + strconv.FormatInt(before, 10)
	}
	rng := &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(limit) + 1}
	pipe := p.rdb.Pipeline()
	marker := pipe.Get(ctx, CompleteKey)
	tx := pipe.ZRevRangeByScore(ctx, TransactionsKey(walletID), rng)
	var rej *redis.StringSliceCmd
	if withRejected {
		rej = pipe.ZRevRangeByScore(ctx, RejectedKey(walletID), rng)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Page{}, fmt.Errorf("transactions of wallet %s: %w", walletID, err)
	}
	if err := tx.Err(); err != nil {
		return Page{}, fmt.Errorf("transactions of wallet %s: %w", walletID, err)
	}
	if marker.Err() != nil || !complete(marker.Val()) {
		return Page{}, ErrIncomplete
	}
	all, err := decode(tx.Val())
	if err != nil {
		return Page{}, fmt.Errorf("transactions of wallet %s: %w", walletID, err)
	}
	if rej != nil {
		r, err := decode(rej.Val())
		if err != nil {
			return Page{}, fmt.Errorf("rejected debits of wallet %s: %w", walletID, err)
		}
		all = mergeNewestFirst(all, r)
	}
	page := Page{Transactions: all}
	if len(all) > limit {
		page.Transactions = all[:limit]
		page.Next = all[limit-1].Version
	}
	if page.Transactions == nil {
		page.Transactions = []wallet.Transaction{}
	}
	return page, nil
}

func decode(members []string) ([]wallet.Transaction, error) {
	out := make([]wallet.Transaction, len(members))
	for i, m := range members {
		if err := json.Unmarshal([]byte(m), &out[i]); err != nil {
			return nil, fmt.Errorf("stored transaction %q: %w", m, err)
		}
	}
	return out, nil
}

func mergeNewestFirst(a, b []wallet.Transaction) []wallet.Transaction {
	out := make([]wallet.Transaction, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].Version > b[0].Version {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	out = append(out, a...)
	return append(out, b...)
}
