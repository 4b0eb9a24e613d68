package main

import (
	"strings"
	"testing"
)

// TestLoadgenFlags: nonsense flags are refused with a clear message and
// exit status 2, before anything is sent.
func TestLoadgenFlags(t *testing.T) {
	base := []string{"loadgen", "--url", "http://127.0.0.1:1", "--token", "t", "--audio", "../../testdata/call01.ogg"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no url", []string{"loadgen", "--sessions", "1", "--duration", "1s"}, "--url is required"},
		{"no sessions", append(base, "--duration", "1s"), "--sessions must be at least 1"},
		{"negative sessions", append(base, "--sessions", "-3", "--duration", "1s"), "--sessions must be at least 1"},
		{"too many sessions", append(base, "--sessions", "100000", "--duration", "1s"), "sessions 100000 not in [1, 10000]"},
		{"no duration", append(base, "--sessions", "1"), "--duration must be positive"},
		{"bad duration", append(base, "--sessions", "1", "--duration", "soon"), `invalid value "soon" for flag -duration`},
		{"not a url", append(base, "--sessions", "1", "--duration", "1s", "--url", "127.0.0.1:8080"), "is not an http(s) URL"},
		{"loss", append(base, "--sessions", "1", "--duration", "1s", "--loss", "150"), "percentages in [0, 100]"},
		{"jitter", append(base, "--sessions", "1", "--duration", "1s", "--jitter", "-1s"), "--jitter must be in [0, 10s]"},
		{"participants", append(base, "--sessions", "1", "--duration", "1s", "--participants", "0"), "--participants must be at least 1"},
		{"ramp", append(base, "--sessions", "1", "--duration", "1s", "--ramp", "-2"), "ramp -2 sessions/s"},
		{"pacers", append(base, "--sessions", "1", "--duration", "1s", "--pacers", "100"), "pacers 100 not in [1, 64]"},
		{"prefix", append(base, "--sessions", "1", "--duration", "1s", "--session-prefix", "a/b"), "--session-prefix"},
		{"missing audio", append(base, "--sessions", "1", "--duration", "1s", "--audio", "/nonexistent.ogg"), "--audio: "},
		{"not ivf", append(base, "--sessions", "1", "--duration", "1s", "--video", "../../testdata/call01.ogg"), "--video: "},
		{"unknown flag", append(base, "--sesions", "1"), "flag provided but not defined: -sesions"},
		{"extra argument", append(base, "--sessions", "1", "--duration", "1s", "now"), "unexpected arguments"},
		{"gateway pid", append(base, "--sessions", "1", "--duration", "1s", "--gateway-pid", "999999999"), "--gateway-pid 999999999: no such process"},
		{"report without files", []string{"loadgen", "report"}, "give the JSON results"},
		{"report of a non-result", []string{"loadgen", "report", "../../testdata/call01.ogg"}, "is not a load generator result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q, want it to mention %q", errOut, tt.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}
