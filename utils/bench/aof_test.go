package main

import "testing"

// TestParseAOF reads the two fields the bench watches out of INFO
// persistence as redis-cli prints it (CRLF line ends), and refuses a text
// without them rather than report "no rewrite".
func TestParseAOF(t *testing.T) {
	info := "# Persistence\r\nloading:0\r\naof_enabled:1\r\naof_rewrite_in_progress:1\r\naof_rewrite_scheduled:0\r\naof_rewrites:3\r\naof_rewrites_consecutive_failures:0\r\n"
	st, err := parseAOF(info)
	if err != nil || st.rewrites != 3 || !st.running {
		t.Fatalf("parseAOF = %+v, %v; want 3 rewrites, one running", st, err)
	}
	st, err = parseAOF("aof_rewrite_in_progress:0\naof_rewrites:0\n")
	if err != nil || st.rewrites != 0 || st.running {
		t.Fatalf("parseAOF = %+v, %v; want none", st, err)
	}
	for _, bad := range []string{"", "# Persistence\r\naof_enabled:1\r\n", "aof_rewrite_in_progress:0\naof_rewrites:x\n"} {
		if st, err := parseAOF(bad); err == nil {
			t.Errorf("parseAOF(%q) = %+v, want an error", bad, st)
		}
	}
}
