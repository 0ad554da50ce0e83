// Package readmodel is the Redis projection of every stream of every domain:
// what the writer pushes after each commit and what wallet_server reads. It
// knows no domain: states and list members are the domains' own JSON.
//
// Keys, per stream (a wallet: domain "wallet"):
//
//	<domain>.<id>           the state as JSON, with a top-level "version"
//	{<domain>.<id>}.<list>  a sorted set of the list's entries, score = the version of the event
//	{<domain>.<id>}.<hash>  a hash of things the stream keeps apart, by their id
//
// A wallet has the lists tx (applied transactions) and rejected (refused
// debits), and the hash holds. The state key never holds the history, so reading a state costs
// one GET however long the stream's history is. Every push goes through one
// Lua script that sets the state only when its version is higher than the
// stored one, so a late or repeated push can never move a stream backwards.
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
)

// Completeness markers. Redis is a projection that can lose everything (a
// restart without persistence, a FLUSHALL); a wallet missing from it must
// then not read as "never used". CompleteKey holds one character
// per partition of the deployment, '1' once the writer of that partition has
// made Redis hold every stream of its log ("1" with one partition, "0110"
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
	// projects it again. A wallet's keys are the same in the layout of
	// any domain as they were when wallets were the only domain.
	LayoutKey = "{coffer.readmodel.complete}.layout"
	// Layout names the keys' layout and the shape of the states in them:
	// "2", the sorted sets' keys carry a hash tag; "3", a wallet's state
	// holds its lifecycle too (status, owner, ...), so a read model of
	// wallets written before is projected again.
	Layout = "3"
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

// Entry is one member of one of a stream's lists: List indexes
// Change.Lists, Version is its score.
type Entry struct {
	List    int
	Version int64
	Member  []byte
}

// Field is one field of one of a stream's hashes as an event of Version
// set it: Hash indexes Change.Hashes.
type Field struct {
	Hash    int
	Version int64
	Name    string
	Value   []byte
}

// Change is what one push tells Redis about one stream: its state after the
// newest event, and the list entries and hash fields of the events from
// version From on.
type Change struct {
	Domain, ID string
	// Lists names the domain's lists, in the order Entry.List counts;
	// Hashes its hashes, in the order Field.Hash counts.
	Lists, Hashes []string
	// Indexed puts the stream in its domain's index (IndexKey), which
	// lists every stream of the domain.
	Indexed bool
	// From is the version of the first event the change carries; Version
	// the stream's version after the last, the version State shows.
	From, Version int64
	State         []byte
	Entries       []Entry
	Fields        []Field
}

// StateKey is the Redis key of a stream's state.
func StateKey(domain, id string) string { return domain + "." + id }

// IndexKey is the Redis key of the index of a domain's streams: a sorted
// set whose members, every score 0, are the ids, so that it reads in id
// order (for KSUIDs, the order they were made in) from any id on.
func IndexKey(domain string) string { return "index." + domain }

// ListKey is the Redis key of one of a stream's lists, or of one of its
// hashes. Its braces put it in the same Redis Cluster slot as the state key
// <domain>.<id>, so that one script may touch both.
func ListKey(domain, id, list string) string { return "{" + domain + "." + id + "}." + list }

// push keeps one invariant: a stream whose state key says version V has
// every list entry and every hash field up to V. A push carries the state
// after its newest event (ARGV[1] its version, ARGV[3] the state), and the
// entries and fields of the events from version ARGV[2] on: ARGV[4] of the
// lists, KEYS[2..], are followed by the hashes; ARGV[5] entries, each as
// (index of its list, version, member), are followed by fields, each as
// (index of its hash, version, field, value). It applies only if it
// continues what Redis holds (the stored version is at least ARGV[2]-1, a
// missing or unreadable state counting as 0); then it (re)places each entry
// at its version, so a repeated push never stores a second copy, sets each
// field an event newer than the stored state set (an older one is there,
// or was overwritten by a newer), and sets the state if it is newer. A push
// that would leave a gap (Redis lost data) changes nothing and returns -1,
// and the writer re-pushes the stream from what Redis has.
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
local lists, i = tonumber(ARGV[4]), 6
for _ = 1, tonumber(ARGV[5]) do
  local key = KEYS[tonumber(ARGV[i]) + 2]
  redis.call('ZREMRANGEBYSCORE', key, ARGV[i+1], ARGV[i+1])
  redis.call('ZADD', key, ARGV[i+1], ARGV[i+2])
  i = i + 3
end
while i <= #ARGV do
  if tonumber(ARGV[i+1]) > curv then
    redis.call('HSET', KEYS[tonumber(ARGV[i]) + 2 + lists], ARGV[i+2], ARGV[i+3])
  end
  i = i + 4
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

// Push applies changes in one pipeline. It returns the indexes in changes
// of those that did not continue what Redis holds and were not applied; the
// caller must push those streams from the version Redis has.
func (p *Projection) Push(ctx context.Context, changes []Change) (gaps []int, err error) {
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

func (p *Projection) pushOnce(ctx context.Context, changes []Change) ([]int, error) {
	pipe := p.rdb.Pipeline()
	results := make([]*redis.Cmd, len(changes))
	for i, c := range changes {
		if c.From < 1 || c.Version < c.From {
			return nil, fmt.Errorf("push %s %s: versions %d to %d", c.Domain, c.ID, c.From, c.Version)
		}
		args := make([]any, 0, 5+3*len(c.Entries)+4*len(c.Fields))
		args = append(args, c.Version, c.From, c.State, len(c.Lists), len(c.Entries))
		for _, e := range c.Entries {
			if e.List < 0 || e.List >= len(c.Lists) {
				return nil, fmt.Errorf("push %s %s: entry of list %d of %d", c.Domain, c.ID, e.List, len(c.Lists))
			}
			args = append(args, e.List, e.Version, e.Member)
		}
		for _, f := range c.Fields {
			if f.Hash < 0 || f.Hash >= len(c.Hashes) {
				return nil, fmt.Errorf("push %s %s: field of hash %d of %d", c.Domain, c.ID, f.Hash, len(c.Hashes))
			}
			args = append(args, f.Hash, f.Version, f.Name, f.Value)
		}
		// The hashes' keys only for a change that sets a field: most set
		// none, and every key is work for the script and for Redis.
		hashes := c.Hashes
		if len(c.Fields) == 0 {
			hashes = nil
		}
		keys := make([]string, 1+len(c.Lists)+len(hashes))
		keys[0] = StateKey(c.Domain, c.ID)
		for i, l := range c.Lists {
			keys[1+i] = ListKey(c.Domain, c.ID, l)
		}
		for i, h := range hashes {
			keys[1+len(c.Lists)+i] = ListKey(c.Domain, c.ID, h)
		}
		results[i] = push.EvalSha(ctx, pipe, keys, args...)
		if c.Indexed {
			// Apart from the script: the index is another cluster slot.
			// Adding an id again changes nothing.
			pipe.ZAdd(ctx, IndexKey(c.Domain), redis.Z{Member: c.ID})
		}
	}
	cmds, err := pipe.Exec(ctx)
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil {
			return nil, fmt.Errorf("push %d streams: %w", len(changes), cerr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("push %d streams: %w", len(changes), err)
	}
	var gaps []int
	for i, r := range results {
		if n, _ := r.Int(); n < 0 {
			gaps = append(gaps, i)
		}
	}
	if p.minReplicas > 0 {
		n, err := p.rdb.Do(ctx, "WAIT", p.minReplicas, p.waitFor.Milliseconds()).Int64()
		if err != nil {
			return nil, fmt.Errorf("push %d streams: wait for replicas: %w", len(changes), err)
		}
		if n < int64(p.minReplicas) {
			return nil, fmt.Errorf("push %d streams: %d of %d replicas acknowledged within %s", len(changes), n, p.minReplicas, p.waitFor)
		}
	}
	return gaps, nil
}

// State returns the stored state of a stream, nil for a stream Redis does
// not know: in a complete read model, one nobody has used. It reads the
// state and the completeness marker in one MGET.
func (p *Projection) State(ctx context.Context, domain, id string) ([]byte, error) {
	vals, err := p.mget(ctx, StateKey(domain, id))
	if err != nil {
		return nil, fmt.Errorf("state of %s %s: %w", domain, id, err)
	}
	if !complete(vals[1]) {
		return nil, ErrIncomplete
	}
	state, ok := vals[0].(string)
	if !ok {
		return nil, nil
	}
	return []byte(state), nil
}

// IndexPage is a page of an index: the ids after After in id order, at most limit, and
// their states (nil for a stream Redis has no state of).
type IndexPage struct {
	IDs    []string
	States [][]byte
	// More says there are ids after the last of IDs.
	More bool
}

// Index reads a page of the index of domain: up to limit ids after the id
// after ("" for the first page), with their states, in two round trips.
func (p *Projection) Index(ctx context.Context, domain, after string, limit int) (IndexPage, error) {
	min := "-"
	if after != "" {
		min = "(" + after
	}
	ids, err := p.rdb.ZRangeByLex(ctx, IndexKey(domain), &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit) + 1}).Result()
	if err != nil {
		return IndexPage{}, fmt.Errorf("index of %s: %w", domain, err)
	}
	var page IndexPage
	if len(ids) > limit {
		ids, page.More = ids[:limit], true
	}
	page.IDs, page.States = ids, make([][]byte, len(ids))
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = StateKey(domain, id)
	}
	if len(keys) == 0 {
		keys = []string{CompleteKey} // for the marker alone
	}
	vals, err := p.fetch(ctx, keys)
	if err != nil {
		return IndexPage{}, fmt.Errorf("index of %s: %w", domain, err)
	}
	if !complete(vals[0][1]) {
		return IndexPage{}, ErrIncomplete
	}
	for i := range ids {
		if v, ok := vals[i][0].(string); ok {
			page.States[i] = []byte(v)
		}
	}
	return page, nil
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

// Stream names one stream.
type Stream struct{ Domain, ID string }

// Versions returns the stored version of each stream, 0 for unknown streams
// and for states that cannot be read, in one pipeline.
func (p *Projection) Versions(ctx context.Context, streams []Stream) ([]int64, error) {
	pipe := p.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(streams))
	for i, s := range streams {
		gets[i] = pipe.Get(ctx, StateKey(s.Domain, s.ID))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("versions of %d streams: %w", len(streams), err)
	}
	out := make([]int64, len(streams))
	for i, g := range gets {
		b, err := g.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("version of %s %s: %w", streams[i].Domain, streams[i].ID, err)
		}
		// A state that cannot be read is as good as none: re-push it.
		out[i], _ = StateVersion(b)
	}
	return out, nil
}

// StateVersion reads the top-level "version" every stored state has.
func StateVersion(state []byte) (int64, error) {
	var v struct {
		Version int64 `json:"version"`
	}
	err := json.Unmarshal(state, &v)
	return v.Version, err
}

// Page is one page of a stream's lists, merged newest first. More says
// that older entries follow; the cursor for them is the version of the
// last member, which its domain reads from it.
type Page struct {
	Members [][]byte
	More    bool
}

// Field returns one field of one of a stream's hashes, nil if Redis holds
// none: in a complete read model, one no event has set. It reads the field
// and the completeness marker in one round trip.
func (p *Projection) Field(ctx context.Context, domain, id, hash, field string) ([]byte, error) {
	pipe := p.rdb.Pipeline()
	marker := pipe.Get(ctx, CompleteKey)
	value := pipe.HGet(ctx, ListKey(domain, id, hash), field)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s of %s %s: %w", hash, domain, id, err)
	}
	m, _ := marker.Result()
	if !complete(m) {
		return nil, ErrIncomplete
	}
	b, err := value.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

// List returns up to limit entries of the named lists of a stream with
// version < before (0 means from the newest), newest first.
func (p *Projection) List(ctx context.Context, domain, id string, lists []string, before int64, limit int) (Page, error) {
	max := "+inf"
	if before > 0 {
		max = "(" + strconv.FormatInt(before, 10)
	}
	rng := &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(limit) + 1}
	pipe := p.rdb.Pipeline()
	marker := pipe.Get(ctx, CompleteKey)
	// One list needs no scores: it comes in order. Several are merged by
	// them.
	var one *redis.StringSliceCmd
	several := make([]*redis.ZSliceCmd, 0, len(lists))
	if len(lists) == 1 {
		one = pipe.ZRevRangeByScore(ctx, ListKey(domain, id, lists[0]), rng)
	} else {
		for _, l := range lists {
			several = append(several, pipe.ZRevRangeByScoreWithScores(ctx, ListKey(domain, id, l), rng))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Page{}, fmt.Errorf("lists of %s %s: %w", domain, id, err)
	}
	var members []string
	if one != nil {
		if err := one.Err(); err != nil {
			return Page{}, fmt.Errorf("lists of %s %s: %w", domain, id, err)
		}
		members = one.Val()
	} else {
		var all []redis.Z
		for _, g := range several {
			if err := g.Err(); err != nil {
				return Page{}, fmt.Errorf("lists of %s %s: %w", domain, id, err)
			}
			all = mergeNewestFirst(all, g.Val())
		}
		members = make([]string, len(all))
		for i, z := range all {
			members[i], _ = z.Member.(string)
		}
	}
	if marker.Err() != nil || !complete(marker.Val()) {
		return Page{}, ErrIncomplete
	}
	page := Page{Members: make([][]byte, min(len(members), limit)), More: len(members) > limit}
	for i := range page.Members {
		page.Members[i] = []byte(members[i])
	}
	return page, nil
}

func mergeNewestFirst(a, b []redis.Z) []redis.Z {
	out := make([]redis.Z, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].Score > b[0].Score {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	out = append(out, a...)
	return append(out, b...)
}
