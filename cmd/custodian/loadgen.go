package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/custodian/custodian/recorder/loadgen"
	"github.com/custodian/custodian/recorder/whip"
)

func init() {
	register("loadgen", "WHIP publishers for capacity tests (`loadgen --url URL --token T --sessions N --duration D`; `loadgen report FILE.json...`)", cmdLoadgen)
}

// defaultAudio is sent when neither --audio nor --video is given (a
// repository checkout's speech sample).
const defaultAudio = "testdata/calls-long.ogg"

func cmdLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "report" {
		return cmdLoadgenReport(args[1:], stdout, stderr)
	}
	fs := newFlagSet("loadgen", stderr)
	url := fs.String("url", "", "gateway base URL, e.g. http://127.0.0.1:8080 (required)")
	token := fs.String("token", os.Getenv("CUSTODIAN_TOKEN"), "bearer token: ingest to publish, admin or compliance also to read the recordings back (env CUSTODIAN_TOKEN)")
	sessions := fs.Int("sessions", 0, "concurrent sessions (required, 1-10000)")
	participants := fs.Int("participants", 1, "publishers per session (1-16)")
	duration := fs.Duration("duration", 0, "how long each publisher sends, e.g. 60s (required)")
	ramp := fs.Float64("ramp", 20, "sessions started per second (0: all at once)")
	audio := fs.String("audio", "", "Ogg Opus file every publisher sends (default "+defaultAudio+" when no --video either)")
	video := fs.String("video", "", "VP8 IVF file every publisher sends")
	loss := fs.Float64("loss", 0, "drop this percentage of outgoing RTP packets (0-100; recoverable by NACK for video)")
	reorder := fs.Float64("reorder", 0, "reorder this percentage of outgoing RTP packets (0-100)")
	jitter := fs.Duration("jitter", 0, "delay each packet by a random 0..jitter (order kept)")
	pacers := fs.Int("pacers", 1, "sending goroutines shared by all publishers (1-64)")
	prefix := fs.String("session-prefix", "", "session id prefix (default loadgen-<start time>)")
	jsonOut := fs.String("json", "", "write the result as JSON to this file (- for stdout; the table then goes to stderr)")
	noReadBack := fs.Bool("no-readback", false, "do not read the recordings back from the API (an ingest token cannot)")
	readBackTimeout := fs.Duration("readback-timeout", 60*time.Second, "how long to wait for recordings to be final")
	connectTimeout := fs.Duration("connect-timeout", 15*time.Second, "how long each publisher may take to connect")
	gatewayPID := fs.Int("gateway-pid", 0, "the gateway's process id on this host: sample its CPU and memory (/proc) in the steady state and scrape its /metrics")
	warmup := fs.Duration("warmup", 3*time.Second, "with --gateway-pid: wait this long after the last setup before measuring")
	verbose := fs.Bool("v", false, "log progress")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	switch {
	case *url == "":
		return usageErr("--url is required (the gateway's base URL, e.g. http://127.0.0.1:8080)")
	case *sessions <= 0:
		return usageErr("--sessions must be at least 1")
	case *duration <= 0:
		return usageErr("--duration must be positive, e.g. 60s")
	}
	opts := loadgen.Options{
		URL: *url, Token: *token, Sessions: *sessions, Participants: *participants, Duration: *duration,
		Ramp: *ramp, Pacers: *pacers, SessionPrefix: *prefix, ConnectTimeout: *connectTimeout,
		ReadBack: !*noReadBack, ReadBackTimeout: *readBackTimeout, GatewayPID: *gatewayPID, Warmup: *warmup,
		Impairment: whip.Impairment{LossPercent: *loss, ReorderPercent: *reorder, Jitter: *jitter},
	}
	if *gatewayPID < 0 || *warmup < 0 {
		return usageErr("--gateway-pid and --warmup must not be negative")
	}
	if *gatewayPID > 0 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", *gatewayPID)); err != nil {
			return usageErr("--gateway-pid %d: no such process on this host (%v)", *gatewayPID, err)
		}
	}
	if *participants < 1 {
		return usageErr("--participants must be at least 1")
	}
	if *loss < 0 || *loss > 100 || *reorder < 0 || *reorder > 100 {
		return usageErr("--loss and --reorder are percentages in [0, 100]")
	}
	if *jitter < 0 || *jitter > 10*time.Second {
		return usageErr("--jitter must be in [0, 10s]")
	}
	if *prefix != "" && !validPrefix(*prefix) {
		return usageErr("--session-prefix %q: letters, digits, '-', '_', '.', ':' or '@', at most 100", *prefix)
	}
	if *audio == "" && *video == "" {
		*audio = defaultAudio
	}
	if *audio != "" {
		m, err := whip.OpenOpus(*audio)
		if err != nil {
			return usageErr("--audio: %v", err)
		}
		opts.Audio = m
	}
	if *video != "" {
		m, err := whip.OpenIVF(*video)
		if err != nil {
			return usageErr("--video: %v", err)
		}
		opts.Video = m
	}
	if err := opts.Validate(); err != nil {
		return usageErr("%v", err)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	res, err := loadgen.Run(ctx, opts)
	if err != nil {
		return err
	}
	table := stdout
	if *jsonOut == "-" {
		table = stderr
	}
	if err := res.WriteTable(table); err != nil {
		return err
	}
	if *jsonOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *jsonOut == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// cmdLoadgenReport prints a Markdown capacity table of earlier runs'
// JSON results (made with --gateway-pid): `custodian loadgen report
// FILE.json...`, as scripts/perf.sh does.
func cmdLoadgenReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen report", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	if fs.NArg() == 0 {
		return usageErr("loadgen report: give the JSON results of earlier runs (--json FILE)")
	}
	var results []*loadgen.Result
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			return usageErr("loadgen report: %v", err)
		}
		var r loadgen.Result
		if err := json.Unmarshal(b, &r); err != nil {
			return usageErr("loadgen report: %s is not a load generator result: %v", path, err)
		}
		if r.Config.Sessions == 0 {
			return usageErr("loadgen report: %s is not a load generator result (no sessions)", path)
		}
		results = append(results, &r)
	}
	return loadgen.WriteReport(stdout, results)
}

// validPrefix: session ids must stay ids (meta.ValidID) with the suffix.
func validPrefix(s string) bool {
	if len(s) > 100 || s[0] == '.' {
		return false
	}
	for _, c := range s {
		ok := c == '-' || c == '_' || c == '.' || c == ':' || c == '@' ||
			(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}
