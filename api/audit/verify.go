package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// Reason says why a chain failed verification.
type Reason string

// Reasons.
const (
	ReasonHashMismatch Reason = "hash_mismatch" // an entry's fields do not hash to its stored hash: changed
	ReasonBrokenLink   Reason = "broken_link"   // an entry's prev_hash is not the previous entry's hash
	ReasonGap          Reason = "gap"           // a sequence number is missing: an entry was removed
	ReasonReordered    Reason = "reordered"     // an entry sits at another sequence number than it was written with
	ReasonTruncated    Reason = "truncated"     // entries after the head were removed (seen by a checkpoint or the expected head)
	// ReasonCheckpointMismatch: a checkpoint names a hash the chain does
	// not have at its sequence number.
	ReasonCheckpointMismatch Reason = "checkpoint_mismatch"
	// ReasonCheckpointSignature: a checkpoint's signature does not verify
	// (or its key is not trusted).
	ReasonCheckpointSignature Reason = "checkpoint_signature"
)

// ErrChainBroken is wrapped by every ChainError.
var ErrChainBroken = errors.New("audit: chain broken")

// ChainError names the first bad entry of a chain.
type ChainError struct {
	Seq    int64
	Reason Reason
	Detail string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at seq %d: %s: %s", e.Seq, e.Reason, e.Detail)
}

// Unwrap returns ErrChainBroken.
func (e *ChainError) Unwrap() error { return ErrChainBroken }

// Result is the outcome of Verify.
type Result struct {
	OK bool `json:"ok"`
	// Entries is how many entries were verified intact (all of them when
	// OK).
	Entries int64 `json:"entries"`
	// HeadSeq and HeadHash are the last intact entry.
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// Checkpoints is how many signed checkpoints were verified.
	Checkpoints int64 `json:"checkpoints"`
	// FirstBadSeq, Reason and Detail describe the first problem.
	FirstBadSeq int64  `json:"first_bad_seq,omitempty"`
	Reason      Reason `json:"reason,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

// Err is nil for an intact chain, else a *ChainError.
func (r Result) Err() error {
	if r.OK {
		return nil
	}
	return &ChainError{Seq: r.FirstBadSeq, Reason: r.Reason, Detail: r.Detail}
}

// VerifyOption adjusts Verify.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	batch   int
	trusted map[string]ed25519.PublicKey
	head    *struct {
		seq  int64
		hash string
	}
}

// WithTrustedKey makes Verify accept checkpoints only when signed by one
// of the trusted keys (by key id), instead of by the public key stored
// beside each checkpoint, which someone able to edit the database could
// replace together with a forged signature.
func WithTrustedKey(keyID string, pub ed25519.PublicKey) VerifyOption {
	return func(c *verifyConfig) {
		if c.trusted == nil {
			c.trusted = map[string]ed25519.PublicKey{}
		}
		c.trusted[keyID] = pub
	}
}

// WithExpectedHead makes Verify also require that the chain reaches seq
// and has hash there: a head kept outside the database, which detects
// entries removed from the end after the last checkpoint.
func WithExpectedHead(seq int64, hash string) VerifyOption {
	return func(c *verifyConfig) {
		c.head = &struct {
			seq  int64
			hash string
		}{seq, hash}
	}
}

// WithBatchSize sets how many entries are read at a time (default 1000).
func WithBatchSize(n int) VerifyOption {
	return func(c *verifyConfig) {
		if n > 0 {
			c.batch = n
		}
	}
}

// reorderWindow is how far from its position Verify looks for the
// sequence number a mismatching entry was written with.
const reorderWindow = 1024

// Verify walks the whole chain in sequence order, reading it in batches
// (memory stays bounded for any length), and checks every entry's hash,
// its link to the previous entry and that no sequence number is missing,
// and every checkpoint's signature and that it matches the chain at its
// sequence number. A broken chain is reported in the Result (OK false,
// the first bad entry and why), not as an error: the error is for a
// database that could not be read.
func Verify(ctx context.Context, db *gorm.DB, opts ...VerifyOption) (Result, error) {
	cfg := verifyConfig{batch: 1000}
	for _, o := range opts {
		o(&cfg)
	}
	w := walker{db: db.WithContext(ctx), batch: cfg.batch, trusted: cfg.trusted, prevHash: GenesisHash}
	if cfg.head != nil {
		w.wantSeq, w.wantHash = cfg.head.seq, cfg.head.hash
	}
	if err := w.walk(); err != nil {
		return Result{}, err
	}
	return w.result(), nil
}

// walker verifies entries after (seq, prevHash) in order, merging in the
// checkpoints.
type walker struct {
	db      *gorm.DB
	batch   int
	trusted map[string]ed25519.PublicKey

	seq      int64 // last intact entry
	prevHash string
	entries  int64
	cps      int64

	cpBuf  []meta.AuditCheckpoint
	cpLast int64
	cpDone bool

	wantSeq  int64
	wantHash string

	bad *ChainError
}

func (w *walker) fail(seq int64, r Reason, format string, args ...any) {
	w.bad = &ChainError{Seq: seq, Reason: r, Detail: fmt.Sprintf(format, args...)}
}

func (w *walker) result() Result {
	r := Result{OK: w.bad == nil, Entries: w.entries, HeadSeq: w.seq, HeadHash: w.prevHash, Checkpoints: w.cps}
	if w.bad != nil {
		r.FirstBadSeq, r.Reason, r.Detail = w.bad.Seq, w.bad.Reason, w.bad.Detail
	}
	return r
}

// nextCheckpoint returns the first checkpoint not yet consumed, or nil.
func (w *walker) nextCheckpoint() (*meta.AuditCheckpoint, error) {
	if len(w.cpBuf) == 0 && !w.cpDone {
		err := w.db.Where("seq > ?", w.cpLast).Order("seq").Limit(w.batch).Find(&w.cpBuf).Error
		if err != nil {
			return nil, fmt.Errorf("audit: verify: read checkpoints: %w", err)
		}
		if len(w.cpBuf) < w.batch {
			w.cpDone = true
		}
	}
	if len(w.cpBuf) == 0 {
		return nil, nil
	}
	return &w.cpBuf[0], nil
}

func (w *walker) consumeCheckpoint() {
	w.cpLast = w.cpBuf[0].Seq
	w.cpBuf = w.cpBuf[1:]
}

// walk verifies to the end of the chain or the first problem (w.bad).
func (w *walker) walk() error {
	// Checkpoints at or before the starting point are not this walk's.
	for {
		cp, err := w.nextCheckpoint()
		if err != nil {
			return err
		}
		if cp == nil || cp.Seq > w.seq {
			break
		}
		w.consumeCheckpoint()
	}
	for {
		var rows []meta.AuditEntry
		if err := w.db.Where("seq > ?", w.seq).Order("seq").Limit(w.batch).Find(&rows).Error; err != nil {
			return fmt.Errorf("audit: verify: read entries after %d: %w", w.seq, err)
		}
		for i := range rows {
			if !w.check(&rows[i]) {
				return nil
			}
			if err := w.checkpointsAt(&rows[i]); err != nil || w.bad != nil {
				return err
			}
			w.seq, w.prevHash = rows[i].Seq, rows[i].Hash
			w.entries++
		}
		if len(rows) < w.batch {
			break
		}
	}
	// Checkpoints beyond the head: entries were removed from the end.
	cp, err := w.nextCheckpoint()
	if err != nil {
		return err
	}
	if cp != nil {
		w.fail(w.seq+1, ReasonTruncated, "checkpoint at seq %d but the chain ends at seq %d", cp.Seq, w.seq)
		return nil
	}
	if w.wantSeq > 0 && w.seq < w.wantSeq {
		w.fail(w.seq+1, ReasonTruncated, "expected head at seq %d but the chain ends at seq %d", w.wantSeq, w.seq)
	}
	return nil
}

// check verifies one entry's position, hash and link.
func (w *walker) check(e *meta.AuditEntry) bool {
	expect := w.seq + 1
	if e.Seq != expect {
		w.fail(expect, ReasonGap, "entry %d is missing (the next entry is %d)", expect, e.Seq)
		return false
	}
	if h := Hash(*e); h != e.Hash {
		if orig, ok := writtenAt(*e); ok {
			w.fail(e.Seq, ReasonReordered, "the entry at seq %d was written as seq %d", e.Seq, orig)
		} else {
			w.fail(e.Seq, ReasonHashMismatch, "fields hash to %s, stored hash is %s", h, e.Hash)
		}
		return false
	}
	if e.PrevHash != w.prevHash {
		w.fail(e.Seq, ReasonBrokenLink, "prev_hash %s, previous entry's hash is %s", e.PrevHash, w.prevHash)
		return false
	}
	if w.wantSeq == e.Seq && w.wantHash != e.Hash {
		w.fail(e.Seq, ReasonHashMismatch, "expected head hash %s, chain has %s", w.wantHash, e.Hash)
		return false
	}
	return true
}

// writtenAt finds, near its position, the sequence number e's stored
// hash was computed with: an entry moved to another position.
func writtenAt(e meta.AuditEntry) (int64, bool) {
	pos := e.Seq
	for d := int64(1); d <= reorderWindow; d++ {
		for _, s := range []int64{pos + d, pos - d} {
			if s < 1 {
				continue
			}
			e.Seq = s
			if Hash(e) == e.Hash {
				return s, true
			}
		}
	}
	return 0, false
}

// checkpointsAt verifies the checkpoints at e's sequence number.
func (w *walker) checkpointsAt(e *meta.AuditEntry) error {
	for {
		cp, err := w.nextCheckpoint()
		if err != nil {
			return err
		}
		if cp == nil || cp.Seq > e.Seq {
			return nil
		}
		if cp.Seq < e.Seq {
			// only possible for seq < 1
			w.fail(cp.Seq, ReasonCheckpointMismatch, "checkpoint at seq %d has no entry", cp.Seq)
			return nil
		}
		if cp.Hash != e.Hash {
			w.fail(cp.Seq, ReasonCheckpointMismatch, "checkpoint names hash %s, the chain has %s", cp.Hash, e.Hash)
			return nil
		}
		if err := w.verifySignature(*cp); err != nil {
			w.fail(cp.Seq, ReasonCheckpointSignature, "%v", err)
			return nil
		}
		w.cps++
		w.consumeCheckpoint()
	}
}

func (w *walker) verifySignature(cp meta.AuditCheckpoint) error {
	stored, err := base64.StdEncoding.DecodeString(cp.PublicKey)
	if err != nil || len(stored) != ed25519.PublicKeySize {
		return fmt.Errorf("checkpoint %d: malformed public key", cp.Seq)
	}
	pub := ed25519.PublicKey(stored)
	if w.trusted != nil {
		t, ok := w.trusted[cp.KeyID]
		if !ok {
			return fmt.Errorf("checkpoint %d: signed by untrusted key %q", cp.Seq, cp.KeyID)
		}
		if !t.Equal(pub) {
			return fmt.Errorf("checkpoint %d: public key is not the trusted key %q", cp.Seq, cp.KeyID)
		}
		pub = t
	}
	sig, err := base64.StdEncoding.DecodeString(cp.Signature)
	if err != nil || !ed25519.Verify(pub, checkpointMessage(cp), sig) {
		return fmt.Errorf("checkpoint %d: signature does not verify", cp.Seq)
	}
	return nil
}
