package events_test

import (
	"context"
	"github.com/nats-io/nats.go"
	"strconv"
	"testing"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"
)

// BenchmarkRelayDrain measures relaying committed outbox rows to an
// embedded JetStream (publish, wait for the ack, mark sent): one op is
// 500 rows; ns/event is reported too.
func BenchmarkRelayDrain(b *testing.B) {
	db := metatest.SQLite(b)
	ctx := context.Background()
	s := startEmbedded(b, b.TempDir(), "", nil)
	nc, err := events.ConnectEmbedded(s, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	r := events.NewRelay(db, js, events.RelayOptions{})
	const rows = 500
	data := events.RecordingData{RecordingID: "rec_x", SessionID: "call", ParticipantID: "p", Status: "complete",
		Completeness: map[string]any{"packets_expected": 17140, "packets_received": 17131}}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := db.Transaction(func(tx *gorm.DB) error {
			for range rows {
				if err := events.Emit(tx, events.Event{Tenant: "bench", Kind: events.RecordingCompleted, Subject: "rec_x", Data: data}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n, err := r.Drain(ctx); err != nil || n != rows {
			b.Fatalf("drain = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/event")
}

// BenchmarkJetStreamPublish is the baseline for BenchmarkRelayDrain: one
// acknowledged publish of a CloudEvent to the same embedded server.
func BenchmarkJetStreamPublish(b *testing.B) {
	ctx := context.Background()
	s := startEmbedded(b, b.TempDir(), "", nil)
	nc, err := events.ConnectEmbedded(s, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"specversion":"1.0","id":"evt_x","source":"/custodian","type":"io.custodian.recording.completed","data":{"recording_id":"rec_x","completeness":{"packets_expected":17140}}}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		msg := nats.NewMsg("custodian.bench.recording.completed")
		msg.Data = body
		msg.Header.Set(jetstream.MsgIDHeader, strconv.Itoa(i))
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}
