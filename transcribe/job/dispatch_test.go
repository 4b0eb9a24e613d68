package job

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
)

// TestDispatcherEvents: the dispatcher makes jobs of recording.completed
// and recording.recovered only, ignores other recording events (a
// session-level recording.failed without a recording id among them),
// terminates messages that do not parse, and never enqueues a recording
// whose policy says not to transcribe.
func TestDispatcherEvents(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.relay(t)
	q := e.queue(t, testQueueConfig(30*time.Second, 3))
	d := NewDispatcher(q, DispatchConfig{PollWait: 200 * time.Millisecond})
	ctx := context.Background()
	if _, err := d.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); d.Run(dctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Junk on the consumer's subjects.
	for _, b := range []string{`not json`, `{"type":"io.custodian.recording.completed","tenant":"default","data":{"recording_id":"../x"}}`,
		`{"type":"io.custodian.recording.failed","tenant":"default","subject":"sess","data":{"session_id":"sess","status":"failed"}}`} {
		m := nats.NewMsg(events.Subject("default", events.RecordingFailed))
		m.Data = []byte(b)
		if _, err := e.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	off := e.record(t, recSpec{data: headerOnlyOgg(), noTranscribe: true})
	recovered := e.record(t, recSpec{data: headerOnlyOgg(), status: meta.StatusRecovered})
	failed := e.record(t, recSpec{data: headerOnlyOgg(), status: meta.StatusFailed})
	completed := e.record(t, recSpec{data: headerOnlyOgg()})

	// Both jobs arrive; nothing else does.
	cons, err := e.js.Consumer(ctx, q.cfg.Stream, q.cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		var j Job
		json.Unmarshal(msg.Data(), &j)
		got[j.RecordingID] = j.Source
		if j.EventTime.IsZero() {
			t.Errorf("job of %s has no event time", j.RecordingID)
		}
		msg.Ack()
	}
	if got[recovered.ID] != SourceRecovered || got[completed.ID] != SourceCompleted || len(got) != 2 {
		t.Fatalf("jobs %v; want %s from recovered and %s from completed", got, recovered.ID, completed.ID)
	}
	// The consumer drains: every event acknowledged or terminated.
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		c, err := e.js.Consumer(ctx, events.StreamName, DispatchConsumer)
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("dispatcher consumer: %d pending, %d unacked", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	for _, r := range []meta.Recording{off, failed} {
		var n int64
		e.db.Model(&meta.Transcript{}).Where("recording_id = ?", r.ID).Count(&n)
		if n != 0 {
			t.Errorf("recording %s (transcribe %v, %s) got a transcript row", r.ID, r.Transcribe, r.Status)
		}
	}
}
