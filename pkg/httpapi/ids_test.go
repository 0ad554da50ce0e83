package httpapi

import (
	"crypto/sha256"
	"testing"

	"github.com/segmentio/ksuid"
)

// The ids a key derives are in logs already: a retry under a key must reach
// what the first request made, whatever build answers it. Each derivation
// is held to the bytes it has always hashed.
func TestKeyedIDsNeverChange(t *testing.T) {
	was := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		id, _ := ksuid.FromBytes(sum[:20])
		return id.String()
	}
	const w, key = "2pJ1NbW1uTJ3XQw2fQ4G7mVj0aZ", "order-1001"
	for _, c := range []struct{ got, want string }{
		{idFor(key, "coffer wallet id"), was("coffer wallet id\x00" + key)},
		{holdIDFor(w, key), was("coffer hold id\x00" + w + "\x00" + key)},
		{transferIDFor(w, key), was("coffer transfer id\x00" + w + "\x00" + key)},
		{transferIDFor("reversal of "+w, key), was("coffer transfer id\x00reversal of " + w + "\x00" + key)},
	} {
		if c.got != c.want {
			t.Errorf("derived %s, always %s", c.got, c.want)
		}
	}
	if a, b := holdIDFor(w, ""), holdIDFor(w, ""); a == b {
		t.Fatalf("two holds without a key got the same id %s", a)
	}
}
