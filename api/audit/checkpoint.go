package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// ErrEmptyChain is returned by Checkpoint when there is no entry to sign.
var ErrEmptyChain = errors.New("audit: chain is empty")

// CheckpointLease is the meta.Lease name the Checkpointer holds.
const CheckpointLease = "audit-checkpoint"

// checkpointMessage is the signed statement:
// "custodian-audit-checkpoint\n{seq}\n{hash}\n{time RFC 3339 UTC}".
func checkpointMessage(cp meta.AuditCheckpoint) []byte {
	return []byte("custodian-audit-checkpoint\n" + strconv.FormatInt(cp.Seq, 10) + "\n" + cp.Hash + "\n" +
		cp.Time.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano))
}

// CheckpointMessage returns the bytes a checkpoint's signature covers, for
// verifying a checkpoint copied out of the database.
func CheckpointMessage(cp meta.AuditCheckpoint) []byte { return checkpointMessage(cp) }

// Checkpoint signs the current head of the chain with key and stores the
// checkpoint. Before signing it verifies the entries written since the
// previous checkpoint (and that the previous checkpoint still matches),
// so a tampered chain is never signed: then it returns a *ChainError.
// When the head already has a checkpoint, that one is returned.
func Checkpoint(ctx context.Context, db *gorm.DB, key ed25519.PrivateKey, keyID string) (meta.AuditCheckpoint, error) {
	if len(key) != ed25519.PrivateKeySize {
		return meta.AuditCheckpoint{}, errors.New("audit: checkpoint: key is not an Ed25519 private key")
	}
	db = db.WithContext(ctx)
	seq, hash, err := Head(ctx, db)
	if err != nil {
		return meta.AuditCheckpoint{}, err
	}
	if seq == 0 {
		return meta.AuditCheckpoint{}, ErrEmptyChain
	}
	var last []meta.AuditCheckpoint
	if err := db.Order("seq DESC").Limit(1).Find(&last).Error; err != nil {
		return meta.AuditCheckpoint{}, fmt.Errorf("audit: checkpoint: read last checkpoint: %w", err)
	}
	if len(last) == 1 && last[0].Seq == seq {
		return last[0], nil
	}
	// Verify from the previous checkpoint (or the start) to the head.
	w := walker{db: db, batch: 1000, prevHash: GenesisHash, wantSeq: seq, wantHash: hash}
	if len(last) == 1 {
		var at []meta.AuditEntry
		if err := db.Where("seq = ?", last[0].Seq).Limit(1).Find(&at).Error; err != nil {
			return meta.AuditCheckpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
		}
		if len(at) == 0 || at[0].Hash != last[0].Hash || Hash(at[0]) != at[0].Hash {
			return meta.AuditCheckpoint{}, &ChainError{Seq: last[0].Seq, Reason: ReasonCheckpointMismatch,
				Detail: "the previous checkpoint no longer matches the chain"}
		}
		w.seq, w.prevHash, w.cpLast = at[0].Seq, at[0].Hash, at[0].Seq
	}
	if err := w.walk(); err != nil {
		return meta.AuditCheckpoint{}, err
	}
	if w.bad != nil {
		return meta.AuditCheckpoint{}, w.bad
	}
	cp := meta.AuditCheckpoint{
		Seq:       w.seq,
		Hash:      w.prevHash,
		KeyID:     keyID,
		PublicKey: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)),
		Time:      time.Now().UTC().Truncate(time.Microsecond),
	}
	cp.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, checkpointMessage(cp)))
	if err := db.Create(&cp).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) { // another instance signed the same head
			var existing meta.AuditCheckpoint
			if err := db.First(&existing, "seq = ?", cp.Seq).Error; err == nil {
				return existing, nil
			}
		}
		return meta.AuditCheckpoint{}, fmt.Errorf("audit: checkpoint at seq %d: %w", cp.Seq, err)
	}
	return cp, nil
}

// Checkpointer writes a checkpoint every Interval on one of several
// instances: the one holding the lease CheckpointLease.
type Checkpointer struct {
	DB       *gorm.DB
	Key      ed25519.PrivateKey
	KeyID    string
	Interval time.Duration // config audit.checkpoint_interval
	Owner    string        // this instance's id in the lease
	Log      *slog.Logger
}

// Run checkpoints at start and then every Interval until ctx ends (then
// it releases the lease and returns nil).
func (c *Checkpointer) Run(ctx context.Context) error {
	if c.Interval <= 0 {
		return errors.New("audit: checkpointer: interval must be positive")
	}
	if c.Owner == "" {
		c.Owner = meta.NewID("inst")
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "audit-checkpointer")
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := meta.ReleaseLease(rctx, c.DB, CheckpointLease, c.Owner); err != nil {
			log.Warn("release lease", "err", err)
		}
	}()
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		c.once(ctx, log)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// once takes (or extends) the lease and, holding it, checkpoints. The
// lease outlives one interval so its holder keeps it from tick to tick;
// another instance takes over within 1.5 intervals of the holder's end.
func (c *Checkpointer) once(ctx context.Context, log *slog.Logger) {
	ok, err := meta.TryLease(ctx, c.DB, CheckpointLease, c.Owner, c.Interval+c.Interval/2)
	if err != nil {
		log.Warn("checkpoint lease", "err", err)
		return
	}
	if !ok {
		return
	}
	cp, err := Checkpoint(ctx, c.DB, c.Key, c.KeyID)
	switch {
	case errors.Is(err, ErrEmptyChain):
	case errors.Is(err, ErrChainBroken):
		log.Error("audit chain broken: not signing a checkpoint", "err", err)
	case err != nil:
		if ctx.Err() == nil {
			log.Warn("checkpoint", "err", err)
		}
	default:
		log.Debug("audit checkpoint", "seq", cp.Seq, "hash", cp.Hash, "key_id", cp.KeyID)
	}
}
