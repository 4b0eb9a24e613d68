package webrtc_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	rtc "github.com/custodian/custodian/recorder/webrtc"
)

func TestLoggerFactory(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: rtc.LevelTrace}))
	lf := rtc.NewLoggerFactory(log, slog.LevelDebug)
	l := lf.NewLogger("ice")
	l.Trace("trace is below the floor")
	l.Debugf("Started agent: isControlling? %t, remoteUfrag: %q, remotePwd: %q", true, "Ty1+", "GsvtHJZvmTsuUyJcdqlORs8r")
	l.Warnf("Failed to get port of UDPAddr from ListenUDPInPortRange: %s %s %s", "udp4", "127.0.0.1:0", "Zq9/")
	l.Warnf("Failed to get TCP connections by ufrag: %s %s %s", "tcp", "127.0.0.1:0", "Xk3=")
	l.Error("plain error")

	out := buf.String()
	for _, secret := range []string{"Ty1+", "GsvtHJZvmTsuUyJcdqlORs8r", "Zq9/", "Xk3="} {
		if strings.Contains(out, secret) {
			t.Errorf("log output contains credential %q:\n%s", secret, out)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4 (trace dropped):\n%s", len(lines), out)
	}
	want := []struct{ level, msg string }{
		{"DEBUG", "Started agent: isControlling? true, remoteUfrag [redacted], remotePwd [redacted]"},
		{"WARN", "Failed to get port of UDPAddr from ListenUDPInPortRange: udp4 127.0.0.1:0 [redacted]"},
		{"WARN", "Failed to get TCP connections by ufrag [redacted]"},
		{"ERROR", "plain error"},
	}
	for i, w := range want {
		if lines[i]["level"] != w.level || lines[i]["msg"] != w.msg || lines[i]["pion"] != "ice" {
			t.Errorf("line %d = %v, want level %s msg %q pion=ice", i, lines[i], w.level, w.msg)
		}
	}
}

func TestLoggerFactoryNilDiscards(t *testing.T) {
	rtc.NewLoggerFactory(nil, slog.LevelDebug).NewLogger("x").Errorf("nothing %d", 1)
}

func TestScrubICECredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{"no secrets here", "no secrets here"},
		{"a=ice-pwd:abcdef, next", "a=ice-pwd [redacted], next"},
		{"ICE-UFRAG=xyz", "ICE-UFRAG [redacted]"},
		{"password: hunter2", "password [redacted]"},
		{"dropping candidate with ufrag abc because it doesn't match", "dropping candidate with ufrag [redacted]"},
	}
	for _, tt := range tests {
		if got := rtc.ScrubICECredentials(tt.in); got != tt.want {
			t.Errorf("ScrubICECredentials(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
