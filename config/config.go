package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultMaxSchedDelay is recording.max_sched_delay's default: new
// sessions are shed while the gateway's work runs later than this (p99
// over 2 s), three quarters of the default jitter buffer. Chosen from the
// capacity runs of docs/performance.md on this project's 2-core machine:
// at 150 ms all of 500 offered sessions were admitted and 698 of 800,
// every admitted one recorded without loss; at 100 ms sessions were
// already shed at 500; with no limit, 800 sessions lost packets.
const DefaultMaxSchedDelay = 150 * time.Millisecond

// Config is the whole configuration of a Custodian process. Every field has
// a yaml key (snake_case) and can be overridden by an environment variable
// CUSTODIAN_<SECTION>_<KEY> (see ApplyEnv).
type Config struct {
	// DataDir holds the embedded defaults: SQLite database, objects, spool,
	// NATS store, keyring, search index. Flag --data, env CUSTODIAN_DATA.
	DataDir string `yaml:"data_dir"`

	Log           Log           `yaml:"log"`
	HTTP          HTTP          `yaml:"http"`
	Database      Database      `yaml:"database"`
	NATS          NATS          `yaml:"nats"`
	S3            S3            `yaml:"s3"`
	KMS           KMS           `yaml:"kms"`
	Recording     Recording     `yaml:"recording"`
	Session       Session       `yaml:"session"`
	WebRTC        WebRTC        `yaml:"webrtc"`
	Transcription Transcription `yaml:"transcription"`
	Search        Search        `yaml:"search"`
	Retention     Retention     `yaml:"retention"`
	Audit         Audit         `yaml:"audit"`
	OIDC          OIDC          `yaml:"oidc"`
	Janus         Janus         `yaml:"janus"`

	// Policies is the policy document (SPEC section 8), kept as a YAML node
	// so the policy package can report line numbers. Parsed by policy.Parse.
	Policies yaml.Node `yaml:"policies"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// HTTP configures the API/WHIP listener.
type HTTP struct {
	Addr         string   `yaml:"addr"`           // listen address, default 127.0.0.1:8080
	TLSCert      string   `yaml:"tls_cert"`       // PEM certificate file; TLS when set with tls_key
	TLSKey       string   `yaml:"tls_key"`        // PEM private key file
	MaxBodyBytes int64    `yaml:"max_body_bytes"` // JSON request body limit
	CORSOrigins  []string `yaml:"cors_origins"`   // origins allowed to call WHIP and the API from a browser
	TrustProxy   bool     `yaml:"trust_proxy"`    // take the source address from X-Forwarded-For
}

// Database selects the metadata store.
type Database struct {
	DSN          string `yaml:"dsn"` // empty: SQLite DATA/custodian.db; postgres://... : PostgreSQL
	MaxOpenConns int    `yaml:"max_open_conns"`
}

// NATS selects the event and job bus.
type NATS struct {
	URL       string `yaml:"url"`        // empty: in-process nats-server with JetStream under DATA/nats
	CredsFile string `yaml:"creds_file"` // NATS credentials file for url
	// ListenAddr makes the embedded server also listen on TCP (for
	// `custodian worker transcribe` on the same host); empty: in-process only.
	ListenAddr string `yaml:"listen_addr"`
	Replicas   int    `yaml:"replicas"` // stream replicas on an external cluster
}

// S3 selects an S3 or S3-compatible object store instead of DATA/objects.
type S3 struct {
	Bucket         string `yaml:"bucket"`
	Endpoint       string `yaml:"endpoint"` // empty: AWS; set for S3-compatible servers
	Region         string `yaml:"region"`
	Prefix         string `yaml:"prefix"`
	ForcePathStyle bool   `yaml:"force_path_style"`
	ObjectLock     string `yaml:"object_lock"` // "" | compliance | governance
}

// KMS selects the key-encryption-key provider.
type KMS struct {
	Provider string `yaml:"provider"` // local | aws
	AWS      AWSKMS `yaml:"aws"`
}

// AWSKMS configures AWS KMS.
type AWSKMS struct {
	KeyID        string            `yaml:"key_id"`         // key id, ARN or alias used for every tenant without its own
	TenantKeyIDs map[string]string `yaml:"tenant_key_ids"` // tenant -> key id/ARN
	Region       string            `yaml:"region"`
	Endpoint     string            `yaml:"endpoint"` // VPC endpoint or test server
}

// Recording configures the media pipeline.
type Recording struct {
	PartSeconds      float64       `yaml:"part_seconds"`       // seal a part at least this often
	JitterBuffer     time.Duration `yaml:"jitter_buffer"`      // how long to wait for late/reordered packets
	MediaGracePeriod time.Duration `yaml:"media_grace_period"` // no media for this long after connect: failed when required
	MaxSessions      int           `yaml:"max_sessions"`       // admission limit, 0: by measured load only
	MaxCPU           float64       `yaml:"max_cpu"`            // shed new sessions above this fraction of all cores (0..1)
	MaxSchedDelay    time.Duration `yaml:"max_sched_delay"`    // shed new sessions while the gateway's work runs this late (p99 over 2 s), 0: off
}

// Session configures session lifecycle.
type Session struct {
	IdleTimeout time.Duration `yaml:"idle_timeout"` // end a session when its last participant left this long ago
}

// WebRTC configures ICE for WHIP/WHEP peers.
type WebRTC struct {
	Interfaces      []string `yaml:"interfaces"`       // network interfaces to gather on; empty: all
	IPs             []string `yaml:"ips"`              // local IPs to gather on; empty: all
	NAT1To1IPs      []string `yaml:"nat_1to1_ips"`     // public IPs announced instead of the local ones
	UDPPortMin      uint16   `yaml:"udp_port_min"`     // ephemeral UDP port range
	UDPPortMax      uint16   `yaml:"udp_port_max"`     //
	UDPMuxPort      int      `yaml:"udp_mux_port"`     // single UDP port for every peer (0: off)
	IncludeLoopback bool     `yaml:"include_loopback"` // offer loopback candidates (tests, same-host publishers)
}

// Transcription configures engines and workers.
type Transcription struct {
	Engine       string        `yaml:"engine"`        // default engine: offline | openai | aws | none (a policy's transcription_engine overrides it)
	Workers      int           `yaml:"workers"`       // workers inside serve (0: none)
	MaxDeliver   int           `yaml:"max_deliver"`   // deliveries before a job fails
	AckWait      time.Duration `yaml:"ack_wait"`      // redeliver a job not acked within this
	ChunkSeconds float64       `yaml:"chunk_seconds"` // longest segment fed to the engine at once
	Offline      Offline       `yaml:"offline"`
	OpenAI       OpenAI        `yaml:"openai"`
	AWS          AWSTranscribe `yaml:"aws"`
}

// TranscriptionEngines are the engine names a worker can run (besides
// "none", which turns transcription off), in the order they are listed in
// errors.
var TranscriptionEngines = []string{"offline", "openai", "aws"}

// Configured reports whether engine name can be built from this
// configuration: the offline engine always (it needs no settings),
// openai when openai.url is set, aws when aws.staging_bucket is set.
func (t Transcription) Configured(name string) bool {
	switch name {
	case "offline":
		return true
	case "openai":
		return t.OpenAI.URL != ""
	case "aws":
		return t.AWS.StagingBucket != ""
	}
	return false
}

// Offline configures the PocketSphinx engine.
type Offline struct {
	ModelDir string `yaml:"model_dir"` // acoustic model, default /usr/share/pocketsphinx/model/en-us/en-us
	Dict     string `yaml:"dict"`      // pronunciation dictionary
	LM       string `yaml:"lm"`        // language model
}

// OpenAI configures an OpenAI-compatible /v1/audio/transcriptions server.
type OpenAI struct {
	URL        string        `yaml:"url"`          // base URL, e.g. http://127.0.0.1:8178
	Model      string        `yaml:"model"`        // e.g. whisper-1
	APIKeyFile string        `yaml:"api_key_file"` // file holding the bearer key (or env CUSTODIAN_TRANSCRIPTION_OPENAI_API_KEY)
	Language   string        `yaml:"language"`
	Timeout    time.Duration `yaml:"timeout"`
}

// AWSTranscribe configures Amazon Transcribe.
type AWSTranscribe struct {
	Region        string        `yaml:"region"`
	Endpoint      string        `yaml:"endpoint"`
	StagingBucket string        `yaml:"staging_bucket"` // bucket for the job's audio (SSE-KMS), deleted after the job
	StagingKMSKey string        `yaml:"staging_kms_key"`
	Language      string        `yaml:"language"`
	PollInterval  time.Duration `yaml:"poll_interval"`
	Timeout       time.Duration `yaml:"timeout"`
}

// Search configures the transcript index.
type Search struct {
	Enabled bool   `yaml:"enabled"`
	Dir     string `yaml:"dir"` // default DATA/index
}

// Retention configures the enforcement worker.
type Retention struct {
	Interval time.Duration `yaml:"interval"` // how often expired items are looked for
	Default  string        `yaml:"default"`  // retention when no policy sets one (Go duration or days, e.g. 365d)
}

// Audit configures the audit chain.
type Audit struct {
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// OIDC configures JWT bearer tokens from an OpenID Connect issuer.
type OIDC struct {
	Issuer          string `yaml:"issuer"`
	ClientID        string `yaml:"client_id"` // expected audience; also the console's client id
	RolesClaim      string `yaml:"roles_claim"`
	TenantClaim     string `yaml:"tenant_claim"`
	DepartmentClaim string `yaml:"department_claim"`
	DefaultTenant   string `yaml:"default_tenant"`
}

// Janus configures the Janus VideoRoom adapter.
type Janus struct {
	URL      string   `yaml:"url"`       // Janus HTTP API, e.g. http://127.0.0.1:8088/janus
	Rooms    []string `yaml:"rooms"`     // room ids to govern
	AllRooms bool     `yaml:"all_rooms"` // govern every room
	Tenant   string   `yaml:"tenant"`
	Secret   string   `yaml:"secret"` // api secret, prefer env CUSTODIAN_JANUS_SECRET
}

// Default returns the configuration used when nothing is configured.
func Default() Config {
	return Config{
		DataDir:  "./data",
		Log:      Log{Level: "info", Format: "text"},
		HTTP:     HTTP{Addr: "127.0.0.1:8080", MaxBodyBytes: 1 << 20},
		Database: Database{MaxOpenConns: 10},
		NATS:     NATS{Replicas: 1},
		S3:       S3{Region: "us-east-1"},
		KMS:      KMS{Provider: "local"},
		Recording: Recording{
			PartSeconds:      2,
			JitterBuffer:     200 * time.Millisecond,
			MediaGracePeriod: 10 * time.Second,
			MaxCPU:           0.85,
			MaxSchedDelay:    DefaultMaxSchedDelay,
		},
		Session: Session{IdleTimeout: 30 * time.Second},
		Transcription: Transcription{
			Engine:       "offline",
			Workers:      1,
			MaxDeliver:   5,
			AckWait:      10 * time.Minute,
			ChunkSeconds: 30,
			Offline: Offline{
				ModelDir: "/usr/share/pocketsphinx/model/en-us/en-us",
				Dict:     "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict",
				LM:       "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin",
			},
			OpenAI: OpenAI{Model: "whisper-1", Timeout: 5 * time.Minute},
			AWS:    AWSTranscribe{Language: "en-US", PollInterval: 5 * time.Second, Timeout: 30 * time.Minute},
		},
		Search:    Search{Enabled: true},
		Retention: Retention{Interval: time.Hour, Default: "2555d"},
		Audit:     Audit{CheckpointInterval: time.Hour},
		OIDC:      OIDC{RolesClaim: "roles", TenantClaim: "tenant", DepartmentClaim: "department", DefaultTenant: "default"},
		Janus:     Janus{Tenant: "default"},
	}
}

// Load reads the YAML file at path (if path is not empty) over Default,
// then applies CUSTODIAN_* environment overrides from environ and validates.
// Unknown keys in the file or the environment are errors naming the key.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := Decode(b, &cfg); err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := ApplyEnv(&cfg, environ); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// Decode strictly decodes YAML into cfg: unknown keys are an error.
func Decode(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file
		}
		return err
	}
	return nil
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr", "%v", err)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tls_cert", "tls_cert and tls_key must be set together")
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		bad("http.max_body_bytes", "must be positive")
	}
	if c.Database.DSN != "" && !strings.HasPrefix(c.Database.DSN, "postgres://") && !strings.HasPrefix(c.Database.DSN, "postgresql://") && !strings.HasPrefix(c.Database.DSN, "sqlite:") && !strings.Contains(c.Database.DSN, "=") {
		bad("database.dsn", "must be a postgres:// URL, a key=value PostgreSQL DSN or sqlite:PATH")
	}
	switch c.S3.ObjectLock {
	case "", "compliance", "governance":
	default:
		bad("s3.object_lock", "%q is not one of compliance, governance", c.S3.ObjectLock)
	}
	if c.S3.ObjectLock != "" && c.S3.Bucket == "" {
		bad("s3.object_lock", "needs s3.bucket")
	}
	switch c.KMS.Provider {
	case "local":
	case "aws":
		if c.KMS.AWS.KeyID == "" && len(c.KMS.AWS.TenantKeyIDs) == 0 {
			bad("kms.aws.key_id", "required when kms.provider is aws")
		}
	default:
		bad("kms.provider", "%q is not one of local, aws", c.KMS.Provider)
	}
	if c.Recording.PartSeconds <= 0 || c.Recording.PartSeconds > 60 {
		bad("recording.part_seconds", "must be in (0, 60]")
	}
	if c.Recording.JitterBuffer < 0 || c.Recording.JitterBuffer > 5*time.Second {
		bad("recording.jitter_buffer", "must be in [0, 5s]")
	}
	if c.Recording.MaxCPU < 0 || c.Recording.MaxCPU > 1 {
		bad("recording.max_cpu", "must be in [0, 1]")
	}
	if d := c.Recording.MaxSchedDelay; d != 0 && (d < time.Millisecond || d > 10*time.Second) {
		bad("recording.max_sched_delay", "must be 0 (off) or in [1ms, 10s]")
	}
	if c.Session.IdleTimeout <= 0 {
		bad("session.idle_timeout", "must be positive")
	}
	if (c.WebRTC.UDPPortMin == 0) != (c.WebRTC.UDPPortMax == 0) || c.WebRTC.UDPPortMin > c.WebRTC.UDPPortMax {
		bad("webrtc.udp_port_min", "udp_port_min and udp_port_max must both be set, min <= max")
	}
	if c.WebRTC.UDPMuxPort < 0 || c.WebRTC.UDPMuxPort > 65535 {
		bad("webrtc.udp_mux_port", "must be a port number")
	}
	for _, ip := range append(append([]string{}, c.WebRTC.IPs...), c.WebRTC.NAT1To1IPs...) {
		if net.ParseIP(ip) == nil {
			bad("webrtc.ips", "%q is not an IP address", ip)
		}
	}
	switch c.Transcription.Engine {
	case "offline", "none":
	case "openai":
		if c.Transcription.OpenAI.URL == "" {
			bad("transcription.openai.url", "required when transcription.engine is openai")
		}
	case "aws":
		if c.Transcription.AWS.StagingBucket == "" {
			bad("transcription.aws.staging_bucket", "required when transcription.engine is aws")
		}
	default:
		bad("transcription.engine", "%q is not one of offline, openai, aws, none", c.Transcription.Engine)
	}
	if c.Transcription.Workers < 0 {
		bad("transcription.workers", "must not be negative")
	}
	if c.Transcription.MaxDeliver < 1 {
		bad("transcription.max_deliver", "must be at least 1")
	}
	if c.Transcription.ChunkSeconds < 1 || c.Transcription.ChunkSeconds > 120 {
		bad("transcription.chunk_seconds", "must be in [1, 120]")
	}
	if _, err := ParseRetention(c.Retention.Default); err != nil {
		bad("retention.default", "%v", err)
	}
	if c.Retention.Interval <= 0 {
		bad("retention.interval", "must be positive")
	}
	if c.Audit.CheckpointInterval <= 0 {
		bad("audit.checkpoint_interval", "must be positive")
	}
	return errors.Join(errs...)
}

// Path resolves p relative to the data directory unless it is absolute.
func (c *Config) Path(p ...string) string {
	joined := filepath.Join(p...)
	if filepath.IsAbs(joined) {
		return joined
	}
	return filepath.Join(append([]string{c.DataDir}, p...)...)
}

// ParseRetention parses a retention period: a Go duration ("720h") or a
// number of days ("2190d"). Decades are allowed; the maximum is 100 years.
func ParseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty retention")
	}
	const day = 24 * time.Hour
	const maxDays = 100 * 366
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int64
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("retention %q: days must be a whole number", s)
		}
		if n <= 0 || n > maxDays {
			return 0, fmt.Errorf("retention %q: must be between 1d and %dd", s, maxDays)
		}
		return time.Duration(n) * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("retention %q: not a duration or a number of days", s)
	}
	if d <= 0 || d > maxDays*day {
		return 0, fmt.Errorf("retention %q: must be positive and at most %dd", s, maxDays)
	}
	return d, nil
}
