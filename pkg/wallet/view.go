package wallet

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// DecodeView reads a state as the writer stores it — json.Marshal of a View,
// its fields in their order, or the four fields of a view written before
// wallets had a lifecycle — without reflection: it is decoded on every
// balance read, where encoding/json (which first scans the whole input,
// then decodes it by reflection) was 4-5% of wallet_server's CPU. Any other
// shape (escapes, non-ASCII, another field order, a fraction, ...) goes to
// encoding/json, so what is accepted, and how, does not change.
func DecodeView(b []byte) (View, error) {
	if v, ok := parseView(b); ok {
		return v, nil
	}
	var v View
	err := json.Unmarshal(b, &v)
	return v, err
}

// parseView decodes exactly
// {"wallet_id":"…","balance":N,"version":N,"updated_at":"…"} followed by
// either } or ,"status":"…","owner":"…","metadata":{"…":"…",…},"overdraft_limit":N,"created_at":"…"}
// with no escapes or non-ASCII bytes in the strings; ok is false for
// anything else.
func parseView(b []byte) (v View, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"wallet_id":"`))
	if !ok {
		return v, false
	}
	id, rest, ok := plainString(rest)
	if !ok {
		return v, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"balance":`)); !ok {
		return v, false
	}
	if v.Balance, rest, ok = jsonInt(rest); !ok {
		return v, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"version":`)); !ok {
		return v, false
	}
	if v.Version, rest, ok = jsonInt(rest); !ok {
		return v, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"updated_at":"`)); !ok {
		return v, false
	}
	at, rest, ok := plainString(rest)
	// The parser time.Time's own UnmarshalJSON uses, quotes aside.
	if !ok || v.UpdatedAt.UnmarshalText(at) != nil {
		return v, false
	}
	v.WalletID = string(id)
	if string(rest) == "}" {
		return v, true
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"status":"`)); !ok {
		return v, false
	}
	status, rest, ok := plainString(rest)
	if !ok {
		return v, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"owner":"`)); !ok {
		return v, false
	}
	owner, rest, ok := plainString(rest)
	if !ok {
		return v, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"metadata":{`)); !ok {
		return v, false
	}
	v.Metadata = map[string]string{}
	for first := true; ; first = false {
		if r, end := bytes.CutPrefix(rest, []byte(`}`)); end {
			rest = r
			break
		}
		if !first {
			if rest, ok = bytes.CutPrefix(rest, []byte(`,`)); !ok {
				return v, false
			}
		}
		var key, val []byte
		if rest, ok = bytes.CutPrefix(rest, []byte(`"`)); !ok {
			return v, false
		}
		if key, rest, ok = plainString(rest); !ok {
			return v, false
		}
		if rest, ok = bytes.CutPrefix(rest, []byte(`:"`)); !ok {
			return v, false
		}
		if val, rest, ok = plainString(rest); !ok {
			return v, false
		}
		v.Metadata[string(key)] = string(val)
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"overdraft_limit":`)); !ok {
		return v, false
	}
	if v.OverdraftLimit, rest, ok = jsonInt(rest); !ok {
		return v, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"created_at":"`)); !ok {
		return v, false
	}
	created, rest, ok := plainString(rest)
	if !ok || string(rest) != "}" || v.CreatedAt.UnmarshalText(created) != nil {
		return v, false
	}
	v.Status, v.Owner = Status(status), string(owner)
	return v, true
}

// plainString splits b after a string's closing quote; ok is false if the
// string holds an escape or a byte JSON does not allow unescaped.
func plainString(b []byte) (s, rest []byte, ok bool) {
	for i, c := range b {
		switch {
		case c == '"':
			return b[:i], b[i+1:], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, nil, false // escapes and non-ASCII: encoding/json's rules
		}
	}
	return nil, nil, false
}

// jsonInt reads an integer as JSON writes one (-?(0|[1-9][0-9]*)) from the
// start of b; a fraction or an exponent after it is not this shape.
func jsonInt(b []byte) (n int64, rest []byte, ok bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	digits := b[start:i]
	if len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) {
		return 0, nil, false
	}
	if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		return 0, nil, false
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return n, b[i:], true
}
