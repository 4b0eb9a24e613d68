package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestExampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../custodian.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := Decode(b, &cfg); err != nil {
		t.Fatalf("example does not decode strictly: %v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var visit func(n *yaml.Node, path string)
	visit = func(n *yaml.Node, path string) {
		if n.Kind == yaml.DocumentNode {
			visit(n.Content[0], path)
			return
		}
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			present[p] = true
			leaf := n.Content[i+1].Kind != yaml.MappingNode
			if leaf && n.Content[i].HeadComment == "" && n.Content[i].LineComment == "" && !strings.HasPrefix(p, "policies") {
				// every key has a comment, alone or shared with its neighbour above
				if i == 0 || (n.Content[i-2].HeadComment == "" && n.Content[i-2].LineComment == "") {
					t.Errorf("key %s has no comment", p)
				}
			}
			if p != "policies" {
				visit(n.Content[i+1], p)
			}
		}
	}
	visit(&root, "")
	for env, path := range EnvKeys() {
		if !present[path] {
			t.Errorf("custodian.example.yaml lacks %s (env %s)", path, env)
		}
	}
	if cfg.Recording.PartSeconds != 2 || cfg.Session.IdleTimeout != 30*time.Second {
		t.Errorf("example defaults differ: %+v %+v", cfg.Recording, cfg.Session)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("example does not validate: %v", err)
	}
}

func TestUnknownKeyIsAnErrorNamingIt(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"top level", "htp:\n  addr: x\n", "htp"},
		{"nested", "recording:\n  part_secnds: 3\n", "part_secnds"},
		{"deep", "kms:\n  aws:\n    keyid: x\n", "keyid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			err := Decode([]byte(tt.doc), &cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode(%q) = %v, want error naming %q", tt.doc, err, tt.want)
			}
		})
	}
}

func TestLoadFileThenEnv(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/c.yaml"
	if err := os.WriteFile(path, []byte("http:\n  addr: 127.0.0.1:9000\nrecording:\n  part_seconds: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, []string{
		"CUSTODIAN_HTTP_ADDR=127.0.0.1:9100",
		"CUSTODIAN_DATA=/tmp/x",
		"CUSTODIAN_SESSION_IDLE_TIMEOUT=5s",
		"CUSTODIAN_WEBRTC_NAT_1TO1_IPS=203.0.113.1, 203.0.113.2",
		"CUSTODIAN_KMS_AWS_TENANT_KEY_IDS=a=arn:1,b=arn:2",
		"CUSTODIAN_WEBRTC_INCLUDE_LOOPBACK=true",
		"CUSTODIAN_TEST_POSTGRES_DSN=ignored",
		"PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9100" || cfg.Recording.PartSeconds != 1 || cfg.DataDir != "/tmp/x" ||
		cfg.Session.IdleTimeout != 5*time.Second || len(cfg.WebRTC.NAT1To1IPs) != 2 ||
		cfg.KMS.AWS.TenantKeyIDs["b"] != "arn:2" || !cfg.WebRTC.IncludeLoopback {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct{ env, want string }{
		{"CUSTODIAN_DATABSE_DSN=x", "CUSTODIAN_DATABSE_DSN"},
		{"CUSTODIAN_RECORDING_PART_SECONDS=abc", "CUSTODIAN_RECORDING_PART_SECONDS"},
		{"CUSTODIAN_SESSION_IDLE_TIMEOUT=5", "CUSTODIAN_SESSION_IDLE_TIMEOUT"},
		{"CUSTODIAN_KMS_PROVIDER=vault", "kms.provider"},
	}
	for _, tt := range tests {
		_, err := Load("", []string{tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load with %s = %v, want error naming %s", tt.env, err, tt.want)
		}
	}
}

func TestParseRetention(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2190d", 2190 * 24 * time.Hour, true},
		{"720h", 720 * time.Hour, true},
		{"36500d", 36500 * 24 * time.Hour, true},
		{"0d", 0, false},
		{"-5d", 0, false},
		{"1.5d", 0, false},
		{"d", 0, false},
		{"forever", 0, false},
		{"99999999d", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseRetention(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRetention(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestTranscriptionConfigured: which engines a policy's
// transcription_engine can get from a configuration.
func TestTranscriptionConfigured(t *testing.T) {
	tc := Default().Transcription
	tests := []struct {
		name string
		set  func(*Transcription)
		want map[string]bool
	}{
		{"defaults", func(*Transcription) {}, map[string]bool{"offline": true, "openai": false, "aws": false, "none": false, "whisper": false}},
		{"openai url", func(t *Transcription) { t.OpenAI.URL = "http://127.0.0.1:8178" }, map[string]bool{"offline": true, "openai": true, "aws": false}},
		{"aws bucket", func(t *Transcription) { t.AWS.StagingBucket = "b" }, map[string]bool{"offline": true, "openai": false, "aws": true}},
	}
	for _, tt := range tests {
		c := tc
		tt.set(&c)
		for name, want := range tt.want {
			if got := c.Configured(name); got != want {
				t.Errorf("%s: Configured(%q) = %v, want %v", tt.name, name, got, want)
			}
		}
	}
}

func TestMaxSchedDelay(t *testing.T) {
	if d := Default().Recording.MaxSchedDelay; d != DefaultMaxSchedDelay || d <= 0 {
		t.Errorf("default recording.max_sched_delay %v: want %v, on", d, DefaultMaxSchedDelay)
	}
	tests := []struct {
		name, doc string
		want      time.Duration
		err       bool
	}{
		{"yaml", "recording:\n  max_sched_delay: 80ms\n", 80 * time.Millisecond, false},
		{"off", "recording:\n  max_sched_delay: 0s\n", 0, false},
		{"largest", "recording:\n  max_sched_delay: 10s\n", 10 * time.Second, false},
		{"negative", "recording:\n  max_sched_delay: -1ms\n", 0, true},
		{"below a millisecond", "recording:\n  max_sched_delay: 500us\n", 0, true},
		{"above 10 s", "recording:\n  max_sched_delay: 11s\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			if err := Decode([]byte(tt.doc), &cfg); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), "recording.max_sched_delay") {
					t.Errorf("Validate() = %v, want an error naming recording.max_sched_delay", err)
				}
				return
			}
			if err != nil || cfg.Recording.MaxSchedDelay != tt.want {
				t.Errorf("max_sched_delay %v, err %v; want %v", cfg.Recording.MaxSchedDelay, err, tt.want)
			}
		})
	}
	cfg, err := Load("", []string{"CUSTODIAN_RECORDING_MAX_SCHED_DELAY=0"})
	if err != nil || cfg.Recording.MaxSchedDelay != 0 {
		t.Errorf("env 0: %v, %v", cfg.Recording.MaxSchedDelay, err)
	}
}
