package job

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe/wer"
)

// cpuTime is the process's user+system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkJobRealTimeFactor runs the whole job for the 40 s of
// testdata/calls-long.ogg with the offline engine and redaction: read the
// sealed recording, decrypt, demux, decode, transcribe chunk by chunk,
// redact, seal the transcript, commit row and event, through the queue
// and a worker. cpu-s/audio-s is the process's CPU time (every thread:
// engine, decoder, NATS server, database) per second of audio.
func BenchmarkJobRealTimeFactor(b *testing.B) {
	en := offlineEngine(b)
	e := newEnv(b, envOptions{})
	q := e.queue(b, testQueueConfig(time.Minute, 3))
	startWorker(b, fastWorker(q, e.transcriber(en)))
	rec := e.record(b, recSpec{file: testdata("calls-long.ogg"), redact: true})
	audioS := float64(rec.DurationMS) / 1000
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	var cpu, wall time.Duration
	for b.Loop() {
		n++
		if err := e.db.Where("recording_id = ?", rec.ID).Delete(&meta.Transcript{}).Error; err != nil {
			b.Fatal(err)
		}
		if _, err := ensureRow(ctx, e.db, rec); err != nil {
			b.Fatal(err)
		}
		c0, w0 := cpuTime(b), time.Now()
		msg := nats.NewMsg(q.Subject(rec.TenantID, rec.ID))
		msg.Data, _ = json.Marshal(Job{Tenant: rec.TenantID, RecordingID: rec.ID, Source: "bench", EnqueuedAt: time.Now()})
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("bench-%d", n))
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			b.Fatal(err)
		}
		e.waitStatus(b, rec.ID, meta.TranscriptCompleted, 5*time.Minute)
		cpu += cpuTime(b) - c0
		wall += time.Since(w0)
	}
	b.ReportMetric(cpu.Seconds()/(float64(n)*audioS), "cpu-s/audio-s")
	b.ReportMetric(wall.Seconds()/(float64(n)*audioS), "wall-s/audio-s")
}

// BenchmarkCompletedToTranscript60s measures, for a 60-second call, the
// time from the recording.completed event (the recorder's commit) to the
// transcript.completed event, through the same components as serve: the
// outbox relay, the dispatcher's consumer of CUSTODIAN_EVENTS, the job on
// CUSTODIAN_JOBS and one worker with the offline engine. The call is
// LibriVox read speech (Debian pocketsphinx-testdata) repeated to 60 s,
// encoded like WebRTC speech (Opus, 20 ms, 32 kbit/s).
func BenchmarkCompletedToTranscript60s(b *testing.B) {
	ogg := sixtySecondCall(b)
	for _, parallel := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) { benchLatency(b, ogg, parallel) })
	}
}

// benchLatency runs BenchmarkCompletedToTranscript60s with parallel
// chunks per job (transcription.workers decoders).
func benchLatency(b *testing.B, ogg string, parallel int) {
	en := offlineEngine(b)
	e := newEnv(b, envOptions{})
	e.relay(b)
	q := e.queue(b, testQueueConfig(5*time.Minute, 3))
	d := NewDispatcher(q, DispatchConfig{PollWait: time.Second})
	if _, err := d.Ensure(context.Background()); err != nil {
		b.Fatal(err)
	}
	dctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(dctx) }()
	b.Cleanup(func() { cancel(); <-done })
	tr := e.transcriber(en)
	tr.Parallel = parallel
	startWorker(b, fastWorker(q, tr))
	var total, dispatch time.Duration
	n := 0
	for b.Loop() {
		n++
		b.StopTimer()
		rec := e.record(b, recSpec{file: ogg})
		b.StartTimer()
		row := e.waitStatus(b, rec.ID, meta.TranscriptCompleted, 10*time.Minute)
		var done, tr meta.OutboxEvent
		e.db.Where("kind = ? AND subject = ?", events.RecordingCompleted, rec.ID).Take(&done)
		e.db.Where("kind = ? AND subject = ?", events.TranscriptCompleted, rec.ID).Take(&tr)
		lat, disp := tr.Time.Sub(done.Time), row.StartedAt.Sub(done.Time)
		total += lat
		dispatch += disp
		b.Logf("60 s call (%d ms): recording.completed → transcript.completed %v (job started after %v)",
			rec.DurationMS, lat.Round(time.Millisecond), disp.Round(time.Millisecond))
	}
	b.ReportMetric(total.Seconds()/float64(n), "latency-s")
	b.ReportMetric(float64(dispatch.Milliseconds())/float64(n), "dispatch-ms")
}

// sixtySecondCall writes the LibriVox utterances, repeated, cut to 60 s
// and encoded as Ogg Opus, into a temporary directory.
func sixtySecondCall(tb testing.TB) string {
	tb.Helper()
	samples, err := wer.LoadLibriVox(wer.LibriVoxDir)
	if err != nil {
		tb.Skipf("LibriVox test data: %v", err)
	}
	dir := tb.TempDir()
	wav, ogg := filepath.Join(dir, "call60.wav"), filepath.Join(dir, "call60.ogg")
	var args []string
	for range 3 {
		for _, s := range samples {
			args = append(args, filepath.Join(wer.LibriVoxDir, s.ID+".wav"))
		}
	}
	args = append(args, wav, "trim", "0", "60")
	if out, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
		tb.Skipf("sox: %v %s", err, out)
	}
	if out, err := exec.Command("opusenc", "--quiet", "--bitrate", "32", "--framesize", "20", wav, ogg).CombinedOutput(); err != nil {
		tb.Skipf("opusenc: %v %s", err, out)
	}
	return ogg
}
