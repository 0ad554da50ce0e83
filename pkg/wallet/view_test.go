package wallet

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentio/ksuid"
)

// plainDecode is encoding/json's reading of a View, the reference.
func plainDecode(b []byte) (View, error) {
	var v View
	err := json.Unmarshal(b, &v)
	return v, err
}

// plainBalance is encoding/json's reading of the balance read's four
// fields, DecodeBalance's reference.
func plainBalance(b []byte) (View, error) {
	var v struct {
		WalletID  string    `json:"wallet_id"`
		Balance   int64     `json:"balance"`
		Version   int64     `json:"version"`
		UpdatedAt time.Time `json:"updated_at"`
		Held      int64     `json:"held"`
	}
	err := json.Unmarshal(b, &v)
	return View{WalletID: v.WalletID, Balance: v.Balance, Version: v.Version, UpdatedAt: v.UpdatedAt, Held: v.Held}, err
}

// parseView is DecodeView's fast path alone; parseBalance DecodeBalance's.
func parseView(b []byte) (View, bool) {
	v, rest, ok := parseHead(b)
	return v, ok && parseTail(rest, &v, true)
}

func parseBalance(b []byte) (View, bool) {
	v, rest, ok := parseHead(b)
	return v, ok && parseTail(rest, &v, false)
}

func sameView(a, b View) bool {
	return a.WalletID == b.WalletID && a.Balance == b.Balance && a.Version == b.Version && a.Held == b.Held &&
		a.UpdatedAt.Equal(b.UpdatedAt) && a.UpdatedAt.Format(time.RFC3339Nano) == b.UpdatedAt.Format(time.RFC3339Nano) &&
		a.Status == b.Status && a.Owner == b.Owner && a.OverdraftLimit == b.OverdraftLimit &&
		(a.Metadata == nil) == (b.Metadata == nil) && maps.Equal(a.Metadata, b.Metadata) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.CreatedAt.Format(time.RFC3339Nano) == b.CreatedAt.Format(time.RFC3339Nano)
}

func randomView(r *rand.Rand) View {
	ints := []int64{0, 1, -1, 7, 1234567, math.MaxInt64, math.MinInt64, r.Int64(), -r.Int64()}
	zones := []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", -5*3600-1800)}
	at := time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
	if r.IntN(5) == 0 {
		at = at.Truncate(time.Second)
	}
	if r.IntN(20) == 0 {
		at = time.Time{}
	}
	v := View{WalletID: ksuid.New().String(), Balance: ints[r.IntN(len(ints))], Version: ints[r.IntN(len(ints))], UpdatedAt: at,
		Status: []Status{"", StatusFrozen, StatusClosed}[r.IntN(3)], CreatedAt: at.Add(-time.Duration(r.Int64N(1e15)))}
	if r.IntN(2) == 0 {
		v.Owner = "someone@example.com"
	}
	if r.IntN(3) == 0 {
		v.Held = ints[r.IntN(len(ints))]
	}
	if r.IntN(2) == 0 {
		v.OverdraftLimit = ints[r.IntN(len(ints))]
	}
	if n := r.IntN(4); n > 0 {
		v.Metadata = map[string]string{}
		for i := range n {
			v.Metadata[fmt.Sprintf("key%d", i)] = fmt.Sprintf("value %d", r.IntN(1000))
		}
	}
	return v
}

// What the writer stores is read without reflection, and to the same View
// as encoding/json reads it.
func TestViewDecodeFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		want := randomView(r)
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := parseView(b)
		if !ok {
			t.Fatalf("the fast path refused what the writer stores: %s", b)
		}
		ref, err := plainDecode(b)
		if err != nil || !sameView(fast, ref) || !sameView(fast, want) {
			t.Fatalf("%s: fast %+v, encoding/json %+v (%v), stored %+v", b, fast, ref, err, want)
		}
		bal, ok := parseBalance(b)
		head := View{WalletID: want.WalletID, Balance: want.Balance, Version: want.Version, UpdatedAt: want.UpdatedAt, Held: want.Held}
		if !ok || !sameView(bal, head) {
			t.Fatalf("%s: the balance read's fast path read %+v (%v), want %+v", b, bal, ok, head)
		}
	}
}

// Any other input reads as encoding/json reads it: the same View, or an
// error. Stored states with bytes changed, and shapes the fast path leaves
// alone.
func TestViewDecodeOtherwiseAsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	inputs := []string{
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"balance":1,"wallet_id":"a","version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a\u0062","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"é","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1.0,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1e2,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":01,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":-0,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":99999999999999999999,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02 03:04:05Z"}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z"} `,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","x":1}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":null}`,
		`{"wallet_id":"a","balance":1,"version":2}`,
		`{"wallet_id":"a","balance":-,"version":2,"updated_at":"2026-01-02T03:04:05Z"}`,
		`{}`, `null`, ``, `{"wallet_id":"`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","status":"open","owner":"o","metadata":{},"overdraft_limit":0,"created_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","status":"open","owner":"o","metadata":{"a":"1","a":"2"},"overdraft_limit":0,"created_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","status":"open","owner":"o","metadata":{"a":"1",},"overdraft_limit":0,"created_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","status":"open","owner":"o","metadata":{"a":1},"overdraft_limit":0,"created_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","status":"open","owner":"o","metadata":null,"overdraft_limit":0,"created_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","status":"open","owner":"\u00e9","metadata":{},"overdraft_limit":0,"created_at":"2026-01-02T03:04:05Z"}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","status":"open","owner":"o","metadata":{},"overdraft_limit":0,"created_at":"2026-01-02T03:04:05Z","balance":7}`,
		`{"wallet_id":"a","balance":1,"version":2,"updated_at":"2026-01-02T03:04:05Z","status":"open","owner":"o","metadata":{},"overdraft_limit":0.5,"created_at":"2026-01-02T03:04:05Z"}`,
	}
	for range 300 {
		b, _ := json.Marshal(randomView(r))
		for range 5 {
			m := []byte(string(b))
			const alphabet = "\"\\-.0123456789eE,:{} aZ\x00\xff"
			m[r.IntN(len(m))] = alphabet[r.IntN(len(alphabet))]
			inputs = append(inputs, string(m))
		}
	}
	for _, in := range inputs {
		ref, refErr := plainDecode([]byte(in))
		got, err := DecodeView([]byte(in))
		if (err != nil) != (refErr != nil) || (err == nil && !sameView(got, ref)) {
			t.Errorf("%q: got %+v (%v), encoding/json %+v (%v)", in, got, err, ref, refErr)
		}
		if fast, ok := parseView([]byte(in)); ok && (refErr != nil || !sameView(fast, ref)) {
			t.Errorf("%q: the fast path read %+v, encoding/json %+v (%v)", in, fast, ref, refErr)
		}
		bref, brefErr := plainBalance([]byte(in))
		bal, err := DecodeBalance([]byte(in))
		if (err != nil) != (brefErr != nil) || (err == nil && !sameView(bal, bref)) {
			t.Errorf("%q: balance %+v (%v), encoding/json %+v (%v)", in, bal, err, bref, brefErr)
		}
	}
}

func FuzzViewDecode(f *testing.F) {
	f.Add([]byte(`{"wallet_id":"3MuL10yhxGgGrJjHtArviPQxwhL","balance":5,"version":1,"updated_at":"2026-12-02T07:08:06.38Z"}`))
	f.Add([]byte(`{"wallet_id":"a","balance":-9223372036854775808,"version":0,"updated_at":"0001-01-01T00:00:00+01:00"}`))
	f.Add([]byte(`{"wallet_id":"a","balance":-5,"version":3,"updated_at":"2026-12-02T07:08:06.38Z","status":"frozen","owner":"o","metadata":{"k":"v"},"overdraft_limit":10,"created_at":"2026-12-02T07:08:05Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ref, refErr := plainDecode(b)
		if fast, ok := parseView(b); ok && (refErr != nil || !sameView(fast, ref)) {
			t.Fatalf("%q: the fast path read %+v, encoding/json %+v (%v)", b, fast, ref, refErr)
		}
		bref, brefErr := plainBalance(b)
		if fast, ok := parseBalance(b); ok && (brefErr != nil || !sameView(fast, bref)) {
			t.Fatalf("%q: the balance read's fast path read %+v, encoding/json %+v (%v)", b, fast, bref, brefErr)
		}
	})
}

func BenchmarkViewDecode(b *testing.B) {
	now := time.Now().UTC()
	data, _ := json.Marshal(View{WalletID: ksuid.New().String(), Balance: 123456, Version: 42, UpdatedAt: now, CreatedAt: now.Add(-time.Hour)})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := plainDecode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeView(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("balance", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeBalance(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The view the writer encodes by hand is what encoding/json writes.
func TestViewAppendJSONIsWhatMarshalWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		v := randomView(r)
		if i%2 == 0 { // the plain wallet of nearly every write
			v.Status, v.Owner, v.Metadata, v.OverdraftLimit = "", "", nil, 0
		}
		if i%97 == 0 {
			v.WalletID = `a"b<c>` + "\u00e9"
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON:\n got %s\nwant %s", got, want)
		}
	}
}

// The transaction and the result the writer encodes by hand are what
// encoding/json writes.
func TestTransactionAppendJSONIsWhatMarshalWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	types := []EventType{Credited, Debited, DebitRejected, CreditRejected}
	for i := range 3000 {
		v := randomView(r)
		tx := Transaction{ID: ksuid.New().String(), Type: types[r.IntN(len(types))], Amount: v.Balance, BalanceAfter: v.OverdraftLimit,
			Version: v.Version, Timestamp: v.UpdatedAt}
		res := Result{WalletID: v.WalletID, Balance: v.OverdraftLimit, Version: v.Version + 1, Timestamp: v.CreatedAt, Transaction: tx}
		switch i % 97 {
		case 0:
			tx.ID = `a"b<c>` + "\u00e9"
		case 1:
			res.WalletID = `a"b<c>` + "\u00e9"
		}
		res.Transaction = tx
		for _, c := range []struct {
			value any
			got   []byte
		}{{tx, tx.appendJSON(nil)}, {res, res.appendJSON([]byte{})}} {
			want, err := json.Marshal(c.value)
			if err != nil {
				t.Fatal(err)
			}
			if string(c.got) != string(want) {
				t.Fatalf("appendJSON of %T:\n got %s\nwant %s", c.value, c.got, want)
			}
		}
	}
}

// The data of a credit, a debit or a refusal of either, encoded by hand, is
// what encoding/json writes.
func TestMoneyDataAppendJSONIsWhatMarshalWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	reasons := []Reason{"", ReasonInsufficientFunds, ReasonFrozen, ReasonClosed, `odd "reason" <&>`}
	for range 1000 {
		v := randomView(r)
		m := moneyData{Amount: v.Balance, BalanceAfter: v.Version, Reason: reasons[r.IntN(len(reasons))]}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON:\n got %s\nwant %s", got, want)
		}
	}
}
