package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"gorm.io/gorm"
)

var errRollback = errors.New("rollback")

// inRollback runs fn in a transaction that is always rolled back, so a
// test can tamper with the chain and verify it without disturbing the
// next case.
func inRollback(tb testing.TB, db *gorm.DB, fn func(tx *gorm.DB)) {
	tb.Helper()
	err := db.Transaction(func(tx *gorm.DB) error {
		fn(tx)
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		tb.Fatal(err)
	}
}

func newKey(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// seed appends n varied entries and returns them.
func seed(tb testing.TB, db *gorm.DB, n int) []meta.AuditEntry {
	tb.Helper()
	ctx := context.Background()
	actions := []string{audit.ActionMediaRead, audit.ActionSearch, audit.ActionExportCreate, audit.ActionPolicyUpdate,
		audit.ActionTokenCreate, audit.ActionRecordingDelete}
	outcomes := []string{audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeError}
	var out []meta.AuditEntry
	for i := range n {
		e, err := audit.Append(ctx, db, audit.Entry{
			Tenant:  fmt.Sprintf("tenant-%d", i%2),
			Actor:   fmt.Sprintf("tok_%d", i),
			Role:    "compliance",
			Action:  actions[i%len(actions)],
			Target:  fmt.Sprintf("recording:rec_%d", i),
			Source:  "192.0.2.7",
			Outcome: outcomes[i%len(outcomes)],
			Details: map[string]any{"range": fmt.Sprintf("bytes=%d-", i*100), "n": i, "nested": map[string]any{"ok": i%2 == 0}},
		})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func mustVerify(tb testing.TB, db *gorm.DB, opts ...audit.VerifyOption) audit.Result {
	tb.Helper()
	r, err := audit.Verify(context.Background(), db, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func wantBroken(tb testing.TB, r audit.Result, seq int64, reason audit.Reason) {
	tb.Helper()
	if r.OK {
		tb.Fatalf("verify passed a tampered chain: %+v", r)
	}
	if r.FirstBadSeq != seq || r.Reason != reason {
		tb.Fatalf("verify: first bad %d (%s: %s), want %d (%s)", r.FirstBadSeq, r.Reason, r.Detail, seq, reason)
	}
	var ce *audit.ChainError
	if err := r.Err(); !errors.As(err, &ce) || !errors.Is(err, audit.ErrChainBroken) || ce.Seq != seq {
		tb.Fatalf("Result.Err() = %v", err)
	}
}

func TestIntactChainVerifies(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		entries := seed(t, db, 30)
		key := newKey(t)
		cp, err := audit.Checkpoint(context.Background(), db, key, "k1")
		if err != nil {
			t.Fatal(err)
		}
		for _, batch := range []int{1, 7, 1000} {
			r := mustVerify(t, db, audit.WithBatchSize(batch),
				audit.WithTrustedKey("k1", key.Public().(ed25519.PublicKey)),
				audit.WithExpectedHead(cp.Seq, cp.Hash))
			if !r.OK || r.Entries != 30 || r.HeadSeq != 30 || r.HeadHash != entries[29].Hash || r.Checkpoints != 1 {
				t.Fatalf("batch %d: %+v", batch, r)
			}
		}
		if entries[0].PrevHash != audit.GenesisHash {
			t.Fatalf("first prev_hash %s", entries[0].PrevHash)
		}
		for i := 1; i < len(entries); i++ {
			if entries[i].Seq != entries[i-1].Seq+1 || entries[i].PrevHash != entries[i-1].Hash {
				t.Fatalf("entry %d does not link to %d", entries[i].Seq, entries[i-1].Seq)
			}
		}
	})
}

// TestTamperingIsDetected changes every field of every entry, deletes
// every entry and swaps every neighbouring pair, directly in the
// database; each must fail verification naming the first bad entry.
func TestTamperingIsDetected(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		const n = 6
		seed(t, db, n)
		// A checkpoint at the head makes removing the last entry visible.
		if _, err := audit.Checkpoint(context.Background(), db, newKey(t), "k1"); err != nil {
			t.Fatal(err)
		}
		if r := mustVerify(t, db); !r.OK {
			t.Fatalf("seeded chain: %+v", r)
		}
		changes := map[string]any{
			"tenant_id": "tenant-x",
			"time":      time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC),
			"actor":     "someone-else",
			"role":      "admin",
			"action":    "media.write",
			"target":    "recording:rec_other",
			"source":    "203.0.113.9",
			"outcome":   "changed",
			"details":   `{"range":"bytes=0-"}`,
			"prev_hash": audit.GenesisHash[:63] + "1",
			"hash":      audit.GenesisHash[:63] + "2",
		}
		for col, v := range changes {
			for seq := int64(1); seq <= n; seq++ {
				t.Run(fmt.Sprintf("change %s of %d", col, seq), func(t *testing.T) {
					inRollback(t, db, func(tx *gorm.DB) {
						if err := tx.Model(&meta.AuditEntry{}).Where("seq = ?", seq).Update(col, v).Error; err != nil {
							t.Fatal(err)
						}
						wantBroken(t, mustVerify(t, tx), seq, audit.ReasonHashMismatch)
					})
				})
			}
		}
		for seq := int64(1); seq <= n; seq++ {
			t.Run(fmt.Sprintf("delete %d", seq), func(t *testing.T) {
				inRollback(t, db, func(tx *gorm.DB) {
					if err := tx.Delete(&meta.AuditEntry{}, "seq = ?", seq).Error; err != nil {
						t.Fatal(err)
					}
					want := audit.ReasonGap
					if seq == n {
						want = audit.ReasonTruncated
					}
					wantBroken(t, mustVerify(t, tx), seq, want)
				})
			})
		}
		for seq := int64(1); seq < n; seq++ {
			t.Run(fmt.Sprintf("swap %d and %d", seq, seq+1), func(t *testing.T) {
				inRollback(t, db, func(tx *gorm.DB) {
					for _, step := range [][2]int64{{seq, -1}, {seq + 1, seq}, {-1, seq + 1}} {
						if err := tx.Model(&meta.AuditEntry{}).Where("seq = ?", step[0]).Update("seq", step[1]).Error; err != nil {
							t.Fatal(err)
						}
					}
					wantBroken(t, mustVerify(t, tx), seq, audit.ReasonReordered)
				})
			})
		}
		if r := mustVerify(t, db); !r.OK {
			t.Fatalf("chain after the rolled-back cases: %+v", r)
		}
	})
}

// TestRehashedChangeIsDetected: someone who knows the encoding changes an
// entry and recomputes its hash; the next entry's link (or the checkpoint
// at the head) exposes it.
func TestRehashedChangeIsDetected(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		entries := seed(t, db, 4)
		if _, err := audit.Checkpoint(ctx, db, newKey(t), "k1"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			seq     int64
			badSeq  int64
			problem audit.Reason
		}{
			{2, 3, audit.ReasonBrokenLink},
			{4, 4, audit.ReasonCheckpointMismatch},
		} {
			inRollback(t, db, func(tx *gorm.DB) {
				e := entries[tc.seq-1]
				e.Target = "recording:rec_innocent"
				e.Hash = audit.Hash(e)
				if err := tx.Save(&e).Error; err != nil {
					t.Fatal(err)
				}
				wantBroken(t, mustVerify(t, tx), tc.badSeq, tc.problem)
			})
		}
		// Checkpoint verifies what it signs: entries since the last
		// checkpoint, and that checkpoint itself.
		seed(t, db, 2)
		for _, seq := range []int64{4, 5} {
			inRollback(t, db, func(tx *gorm.DB) {
				var e meta.AuditEntry
				if err := tx.First(&e, "seq = ?", seq).Error; err != nil {
					t.Fatal(err)
				}
				e.Actor = "someone-else"
				e.Hash = audit.Hash(e)
				if err := tx.Save(&e).Error; err != nil {
					t.Fatal(err)
				}
				if _, err := audit.Checkpoint(ctx, tx, newKey(t), "k1"); !errors.Is(err, audit.ErrChainBroken) {
					t.Fatalf("checkpoint over a chain changed at %d: %v", seq, err)
				}
			})
		}
		if _, err := audit.Checkpoint(ctx, db, newKey(t), "k1"); err != nil {
			t.Fatalf("checkpoint of the intact chain: %v", err)
		}
	})
}

func TestCheckpointSignatures(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		key := newKey(t)
		pub := key.Public().(ed25519.PublicKey)
		if _, err := audit.Checkpoint(ctx, db, key, "k1"); !errors.Is(err, audit.ErrEmptyChain) {
			t.Fatalf("checkpoint of an empty chain: %v", err)
		}
		seed(t, db, 3)
		cp1, err := audit.Checkpoint(ctx, db, key, "k1")
		if err != nil {
			t.Fatal(err)
		}
		again, err := audit.Checkpoint(ctx, db, key, "k1")
		if err != nil || again.Seq != cp1.Seq || again.Signature != cp1.Signature {
			t.Fatalf("checkpoint of an unchanged head: %+v, %v", again, err)
		}
		seed(t, db, 2)
		cp2, err := audit.Checkpoint(ctx, db, key, "k1")
		if err != nil || cp2.Seq != 5 {
			t.Fatalf("second checkpoint: %+v, %v", cp2, err)
		}
		if !ed25519.Verify(pub, audit.CheckpointMessage(cp2), mustB64(t, cp2.Signature)) {
			t.Fatal("checkpoint signature does not verify outside Verify")
		}
		if r := mustVerify(t, db, audit.WithTrustedKey("k1", pub)); !r.OK || r.Checkpoints != 2 {
			t.Fatalf("verify: %+v", r)
		}

		forged := newKey(t)
		tests := []struct {
			name    string
			update  map[string]any
			opts    []audit.VerifyOption
			problem audit.Reason
		}{
			{"flipped signature byte", map[string]any{"signature": flip(t, cp1.Signature)}, nil, audit.ReasonCheckpointSignature},
			{"changed time", map[string]any{"time": cp1.Time.Add(time.Second)}, nil, audit.ReasonCheckpointSignature},
			{"other key id", map[string]any{"key_id": "k2"}, []audit.VerifyOption{audit.WithTrustedKey("k1", pub)}, audit.ReasonCheckpointSignature},
			{"hash of another entry", map[string]any{"hash": cp2.Hash}, nil, audit.ReasonCheckpointMismatch},
			{"signed by another key", map[string]any{
				"public_key": base64.StdEncoding.EncodeToString(forged.Public().(ed25519.PublicKey)),
				"signature":  base64.StdEncoding.EncodeToString(ed25519.Sign(forged, audit.CheckpointMessage(cp1))),
			}, []audit.VerifyOption{audit.WithTrustedKey("k1", pub)}, audit.ReasonCheckpointSignature},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				inRollback(t, db, func(tx *gorm.DB) {
					if err := tx.Model(&meta.AuditCheckpoint{}).Where("seq = ?", cp1.Seq).Updates(tc.update).Error; err != nil {
						t.Fatal(err)
					}
					wantBroken(t, mustVerify(t, tx, tc.opts...), cp1.Seq, tc.problem)
				})
			})
		}
		// Without trusted keys a self-consistent replacement passes: that
		// is why the gateway passes its key (documented).
		inRollback(t, db, func(tx *gorm.DB) {
			tx.Model(&meta.AuditCheckpoint{}).Where("seq = ?", cp1.Seq).Updates(tests[4].update)
			if r := mustVerify(t, tx); !r.OK {
				t.Fatalf("self-consistent checkpoint without trusted keys: %+v", r)
			}
		})
	})
}

func TestExpectedHeadDetectsTruncation(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		seed(t, db, 5)
		seq, hash, err := audit.Head(ctx, db)
		if err != nil || seq != 5 {
			t.Fatalf("head = %d, %v", seq, err)
		}
		if err := db.Delete(&meta.AuditEntry{}, "seq IN ?", []int64{4, 5}).Error; err != nil {
			t.Fatal(err)
		}
		if r := mustVerify(t, db); !r.OK {
			t.Fatalf("without anchor a cut tail is invisible, got %+v", r)
		}
		wantBroken(t, mustVerify(t, db, audit.WithExpectedHead(seq, hash)), 4, audit.ReasonTruncated)
	})
}

func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		const goroutines, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					_, err := audit.Append(ctx, db, audit.Entry{Tenant: "default", Actor: fmt.Sprintf("g%d", g),
						Action: audit.ActionSearch, Target: fmt.Sprintf("q%d", i)})
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		r := mustVerify(t, db)
		if !r.OK || r.Entries != goroutines*each || r.HeadSeq != goroutines*each {
			t.Fatalf("after concurrent appends: %+v", r)
		}
	})
}

// TestAppendTxCommitsWithTheChange: an entry appended in a transaction
// that rolls back disappears with it and leaves the chain intact.
func TestAppendTxCommitsWithTheChange(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		seed(t, db, 2)
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&meta.LegalHold{ID: meta.NewID("hold"), TenantID: "default", Name: "case"}).Error; err != nil {
				return err
			}
			if _, err := audit.AppendTx(tx, audit.Entry{Tenant: "default", Action: audit.ActionLegalHoldApply}); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		e, err := audit.AppendTx(db.WithContext(ctx), audit.Entry{Tenant: "default", Action: audit.ActionLegalHoldApply})
		if err != nil || e.Seq != 3 {
			t.Fatalf("append outside a transaction: seq %d, %v", e.Seq, err)
		}
		if r := mustVerify(t, db); !r.OK || r.Entries != 3 {
			t.Fatalf("%+v", r)
		}
	})
}

// TestAwkwardValuesRoundTrip: values that change on their way through a
// database (large integers, structs, invalid UTF-8, NUL, time zones) are
// normalized before hashing, so the stored entry still verifies.
func TestAwkwardValuesRoundTrip(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		type rng struct {
			Start, End int64
		}
		_, err := audit.Append(ctx, db, audit.Entry{
			Tenant: "default",
			Actor:  "bad\xffutf8\x00nul",
			Action: audit.ActionMediaRead,
			Target: "recording:ünïcødé <&>",
			Time:   time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("X", 5*3600+1800)),
			Details: map[string]any{
				"big": int64(1)<<62 + 1, "float": 0.1, "range": rng{1, 1 << 40}, "list": []any{1, "x", nil},
				"text": "nul\x00inside", "empty": map[string]any{},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := mustVerify(t, db); !r.OK {
			t.Fatalf("%+v", r)
		}
	})
}

func TestAppendRejectsInvalidEntries(t *testing.T) {
	db := metatest.SQLite(t)
	long := string(make([]byte, 65))
	for _, tc := range []struct {
		name string
		e    audit.Entry
	}{
		{"no action", audit.Entry{Actor: "a"}},
		{"unknown outcome", audit.Entry{Action: audit.ActionSearch, Outcome: "maybe"}},
		{"long action", audit.Entry{Action: long}},
		{"long tenant", audit.Entry{Action: audit.ActionSearch, Tenant: long}},
		{"unencodable details", audit.Entry{Action: audit.ActionSearch, Details: map[string]any{"f": func() {}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := audit.Append(context.Background(), db, tc.e); !errors.Is(err, audit.ErrInvalidEntry) {
				t.Fatalf("Append = %v, want ErrInvalidEntry", err)
			}
		})
	}
	var n int64
	db.Model(&meta.AuditEntry{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d entries written", n)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 25 {
			outcome := audit.OutcomeSuccess
			if i%5 == 0 {
				outcome = audit.OutcomeDenied
			}
			_, err := audit.Append(ctx, db, audit.Entry{Tenant: []string{"a", "b"}[i%2], Actor: fmt.Sprintf("u%d", i%3),
				Action: audit.ActionMediaRead, Target: fmt.Sprintf("rec_%d", i%4), Outcome: outcome,
				Time: base.Add(time.Duration(i) * time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
		}
		// page through tenant a, 4 at a time
		var seqs []int64
		cursor := ""
		for pages := 0; ; pages++ {
			page, next, err := audit.List(ctx, db, audit.Filter{Tenant: "a", Limit: 4, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				if e.TenantID != "a" {
					t.Fatalf("tenant %s in tenant a's list", e.TenantID)
				}
				seqs = append(seqs, e.Seq)
			}
			if next == "" {
				break
			}
			cursor = next
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
		}
		if len(seqs) != 13 {
			t.Fatalf("tenant a: %d entries, want 13", len(seqs))
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] >= seqs[i-1] {
				t.Fatalf("not newest first: %v", seqs)
			}
		}
		tests := []struct {
			name string
			f    audit.Filter
			want int
		}{
			{"actor", audit.Filter{Actor: "u1"}, 8},
			{"target", audit.Filter{Target: "rec_0"}, 7},
			{"outcome", audit.Filter{Outcome: audit.OutcomeDenied}, 5},
			{"action", audit.Filter{Action: audit.ActionMediaRead}, 25},
			{"other action", audit.Filter{Action: audit.ActionSearch}, 0},
			{"from", audit.Filter{From: base.Add(20 * time.Minute)}, 5},
			{"to", audit.Filter{To: base.Add(3 * time.Minute)}, 3},
			{"window and tenant", audit.Filter{Tenant: "b", From: base.Add(10 * time.Minute), To: base.Add(20 * time.Minute)}, 5},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, next, err := audit.List(ctx, db, tc.f)
				if err != nil || len(got) != tc.want || next != "" {
					t.Fatalf("List = %d entries, next %q, %v; want %d", len(got), next, err, tc.want)
				}
			})
		}
		for _, bad := range []string{"x", "!!!", base64.RawURLEncoding.EncodeToString([]byte("a1:-3")),
			base64.RawURLEncoding.EncodeToString([]byte("zz:3"))} {
			if _, _, err := audit.List(ctx, db, audit.Filter{Cursor: bad}); !errors.Is(err, audit.ErrInvalidCursor) {
				t.Fatalf("cursor %q: %v", bad, err)
			}
		}
	})
}

// TestCheckpointerWaitsForTheLease: while another instance holds the
// checkpoint lease, a checkpointer writes nothing; once it is released,
// it writes checkpoints.
func TestCheckpointerWaitsForTheLease(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		seed(t, db, 2)
		if ok, err := meta.TryLease(ctx, db, audit.CheckpointLease, "instance-b", time.Hour); err != nil || !ok {
			t.Fatalf("take lease: %v, %v", ok, err)
		}
		key := newKey(t)
		c := &audit.Checkpointer{DB: db, Key: key, KeyID: "a", Interval: 20 * time.Millisecond, Owner: "instance-a"}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		// Several ticks pass while b holds the lease: seen by a's failed
		// attempts keeping the lease row unchanged.
		for range 10 {
			seed(t, db, 1)
			time.Sleep(20 * time.Millisecond)
		}
		var n int64
		db.Model(&meta.AuditCheckpoint{}).Count(&n)
		if n != 0 {
			t.Fatalf("%d checkpoints written without the lease", n)
		}
		if err := meta.ReleaseLease(ctx, db, audit.CheckpointLease, "instance-b"); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			seed(t, db, 1)
			db.Model(&meta.AuditCheckpoint{}).Count(&n)
			if n < 2 {
				return fmt.Errorf("%d checkpoints", n)
			}
			return nil
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		r := mustVerify(t, db, audit.WithTrustedKey("a", key.Public().(ed25519.PublicKey)))
		if !r.OK || r.Checkpoints < 2 {
			t.Fatalf("%+v", r)
		}
		var leases int64
		db.Model(&meta.Lease{}).Where("name = ?", audit.CheckpointLease).Count(&leases)
		if leases != 0 {
			t.Fatal("lease not released at shutdown")
		}
	})
}

// TestTwoCheckpointersKeepAValidChain runs two checkpointers (two
// instances) on one database while entries are appended: checkpoints
// appear and every one verifies against the instances' keys.
func TestTwoCheckpointersKeepAValidChain(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		keyA, keyB := newKey(t), newKey(t)
		var wg sync.WaitGroup
		for _, c := range []*audit.Checkpointer{
			{DB: db, Key: keyA, KeyID: "a", Interval: 50 * time.Millisecond, Owner: "instance-a"},
			{DB: db, Key: keyB, KeyID: "b", Interval: 50 * time.Millisecond, Owner: "instance-b"},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.Run(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			seed(t, db, 1)
			var n int64
			db.Model(&meta.AuditCheckpoint{}).Count(&n)
			if n < 3 {
				return fmt.Errorf("%d checkpoints", n)
			}
			return nil
		})
		cancel()
		wg.Wait()
		r := mustVerify(t, db, audit.WithTrustedKey("a", keyA.Public().(ed25519.PublicKey)),
			audit.WithTrustedKey("b", keyB.Public().(ed25519.PublicKey)))
		if !r.OK || r.Checkpoints < 3 {
			t.Fatalf("%+v", r)
		}
	})
}

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

func mustB64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func flip(tb testing.TB, sig string) string {
	b := mustB64(tb, sig)
	b[0] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}
