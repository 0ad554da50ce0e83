package wallet

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// DecodeView reads a state as the writer stores it — json.Marshal of a View
// — without reflection; any other shape (escapes, non-ASCII, another field
// order, a fraction, ...) goes to encoding/json, so what is accepted, and
// how, does not change.
func DecodeView(b []byte) (View, error) {
	if v, rest, ok := parseHead(b); ok && parseTail(rest, &v, true) {
		return v, nil
	}
	var v View
	err := json.Unmarshal(b, &v)
	return v, err
}

// DecodeBalance reads the first five fields of a stored state, the balance
// read's, as json.Unmarshal into a View of only those five would: decoded
// on every balance read, where encoding/json (which first scans the whole
// input, then decodes it by reflection) was 4-5% of wallet_server's CPU,
// it reads them without reflection and steps over the lifecycle after them
// without allocating.
func DecodeBalance(b []byte) (View, error) {
	if v, rest, ok := parseHead(b); ok && parseTail(rest, &v, false) {
		return v, nil
	}
	var bv struct {
		WalletID  string    `json:"wallet_id"`
		Balance   int64     `json:"balance"`
		Version   int64     `json:"version"`
		UpdatedAt time.Time `json:"updated_at"`
		Held      int64     `json:"held"`
	}
	err := json.Unmarshal(b, &bv)
	return View{WalletID: bv.WalletID, Balance: bv.Balance, Version: bv.Version, UpdatedAt: bv.UpdatedAt, Held: bv.Held}, err
}

// parseHead decodes exactly {"wallet_id":"…","balance":N,"version":N,"updated_at":"…"[,"held":N]
// with no escapes or non-ASCII bytes in the strings, and returns what
// follows; ok is false for anything else.
func parseHead(b []byte) (v View, rest []byte, ok bool) {
	rest, ok = bytes.CutPrefix(b, []byte(`{"wallet_id":"`))
	if !ok {
		return v, nil, false
	}
	id, rest, ok := plainString(rest)
	if !ok {
		return v, nil, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"balance":`)); !ok {
		return v, nil, false
	}
	if v.Balance, rest, ok = jsonInt(rest); !ok {
		return v, nil, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"version":`)); !ok {
		return v, nil, false
	}
	if v.Version, rest, ok = jsonInt(rest); !ok {
		return v, nil, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"updated_at":"`)); !ok {
		return v, nil, false
	}
	at, rest, ok := plainString(rest)
	// The parser time.Time's own UnmarshalJSON uses, quotes aside.
	if !ok || v.UpdatedAt.UnmarshalText(at) != nil {
		return v, nil, false
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"held":`)); found {
		if v.Held, rest, ok = jsonInt(r); !ok {
			return v, nil, false
		}
	}
	v.WalletID = string(id)
	return v, rest, true
}

// parseTail decodes what follows the head as the writer writes it: either }
// (a view written before wallets had a lifecycle), or
// [,"status":"…"][,"owner":"…"][,"metadata":{"…":"…",…}][,"overdraft_limit":N],"created_at":"…"}
// with plain strings. keep says whether to fill v's lifecycle; without it
// nothing is allocated and created_at is not read as a time.
func parseTail(rest []byte, v *View, keep bool) bool {
	if string(rest) == "}" {
		return true
	}
	var ok bool
	if r, found := bytes.CutPrefix(rest, []byte(`,"status":"`)); found {
		var status []byte
		if status, rest, ok = plainString(r); !ok {
			return false
		}
		if keep {
			v.Status = Status(status)
		}
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"owner":"`)); found {
		var owner []byte
		if owner, rest, ok = plainString(r); !ok {
			return false
		}
		if keep {
			v.Owner = string(owner)
		}
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"metadata":{`)); found {
		rest = r
		if keep {
			v.Metadata = map[string]string{}
		}
		for first := true; ; first = false {
			if r, end := bytes.CutPrefix(rest, []byte(`}`)); end {
				rest = r
				break
			}
			if !first {
				if rest, ok = bytes.CutPrefix(rest, []byte(`,`)); !ok {
					return false
				}
			}
			var key, val []byte
			if rest, ok = bytes.CutPrefix(rest, []byte(`"`)); !ok {
				return false
			}
			if key, rest, ok = plainString(rest); !ok {
				return false
			}
			if rest, ok = bytes.CutPrefix(rest, []byte(`:"`)); !ok {
				return false
			}
			if val, rest, ok = plainString(rest); !ok {
				return false
			}
			if keep {
				v.Metadata[string(key)] = string(val)
			}
		}
	}
	if r, found := bytes.CutPrefix(rest, []byte(`,"overdraft_limit":`)); found {
		var limit int64
		if limit, rest, ok = jsonInt(r); !ok {
			return false
		}
		if keep {
			v.OverdraftLimit = limit
		}
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"created_at":"`)); !ok {
		return false
	}
	created, rest, ok := plainString(rest)
	if !ok || string(rest) != "}" {
		return false
	}
	return !keep || v.CreatedAt.UnmarshalText(created) == nil
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
