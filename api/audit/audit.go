package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// Outcomes of an audited action.
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied"
	OutcomeError   = "error"
)

// Actions. The API records these; other strings (lowercase, dotted, at
// most 64 bytes) are accepted too.
const (
	ActionMediaRead      = "media.read"
	ActionTranscriptRead = "transcript.read"
	// ActionTranscriptReadUnredacted: the unredacted copy was read.
	ActionTranscriptReadUnredacted = "transcript.read_unredacted"
	ActionSearch                   = "search"
	ActionExportCreate             = "export.create"
	ActionExportDownload           = "export.download"
	ActionLegalHoldApply           = "legalhold.apply"
	ActionLegalHoldRelease         = "legalhold.release"
	ActionPolicyUpdate             = "policy.update"
	ActionTokenCreate              = "token.create"
	ActionTokenRevoke              = "token.revoke"
	ActionRecordingDelete          = "recording.delete"
	ActionTranscriptDelete         = "transcript.delete"
	ActionRetentionDelete          = "retention.delete"
	ActionKeysRotate               = "keys.rotate"
	ActionAuditRead                = "audit.read"
	ActionAuditVerify              = "audit.verify"
	ActionConsentRecord            = "consent.record"
	ActionSessionPause             = "session.pause"
	ActionSessionResume            = "session.resume"
	ActionRecordingDownload        = "recording.download"
)

// GenesisHash is the PrevHash of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// hashDomain starts the encoding hashed for an entry; its version changes
// whenever the encoding does.
const hashDomain = "custodian-audit-v1\n"

// pgLockID is the PostgreSQL advisory lock that serializes appends.
const pgLockID = 0x61756469746368 // "auditch"

// ErrInvalidEntry is returned by Append for an entry that cannot be
// recorded as given (no action, unknown outcome, over-long fields,
// details that are not JSON). Nothing is written.
var ErrInvalidEntry = errors.New("audit: invalid entry")

// Entry is one audited action, as the caller describes it.
type Entry struct {
	Tenant  string
	Actor   string // token id, OIDC subject, or "system"
	Role    string
	Action  string // one of the Action constants
	Target  string // what was acted on: "recording:rec_…", "session:…", a query hash
	Source  string // client address
	Outcome string // success (default) | denied | error
	// Details holds further facts (byte ranges, filters, counts); never
	// transcript text, tokens or key material. It is stored and hashed in
	// its JSON form.
	Details map[string]any
	// Time defaults to now. It is kept to the microsecond.
	Time time.Time
}

// Append records e as the next link of the chain in its own transaction.
func Append(ctx context.Context, db *gorm.DB, e Entry) (meta.AuditEntry, error) {
	var out meta.AuditEntry
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		out, err = appendTx(tx, e)
		return err
	})
	return out, err
}

// AppendTx records e as the next link of the chain inside tx, so it
// commits (or rolls back) with the change it records. Until tx ends,
// other appends wait: keep such transactions short. tx must use READ
// COMMITTED isolation (the default) on PostgreSQL. Given a *gorm.DB that
// is not in a transaction, AppendTx opens one.
func AppendTx(tx *gorm.DB, e Entry) (meta.AuditEntry, error) {
	if _, inTx := tx.Statement.ConnPool.(gorm.TxCommitter); !inTx {
		var out meta.AuditEntry
		err := tx.Transaction(func(tx *gorm.DB) error {
			var err error
			out, err = appendTx(tx, e)
			return err
		})
		return out, err
	}
	return appendTx(tx, e)
}

func appendTx(tx *gorm.DB, e Entry) (meta.AuditEntry, error) {
	row, err := newRow(e)
	if err != nil {
		return meta.AuditEntry{}, err
	}
	// Serialize appends: PostgreSQL by an advisory lock held to the end of
	// the transaction; SQLite transactions here are IMMEDIATE, so the
	// write lock is already held.
	if meta.Dialect(tx) == meta.DialectPostgres {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", pgLockID).Error; err != nil {
			return meta.AuditEntry{}, fmt.Errorf("audit: append %s: lock: %w", row.Action, err)
		}
	}
	var head []meta.AuditEntry
	if err := tx.Select("seq", "hash").Order("seq DESC").Limit(1).Find(&head).Error; err != nil {
		return meta.AuditEntry{}, fmt.Errorf("audit: append %s: read head: %w", row.Action, err)
	}
	row.Seq, row.PrevHash = 1, GenesisHash
	if len(head) == 1 {
		row.Seq, row.PrevHash = head[0].Seq+1, head[0].Hash
	}
	row.Hash = Hash(row)
	if err := tx.Create(&row).Error; err != nil {
		return meta.AuditEntry{}, fmt.Errorf("audit: append %s: %w", row.Action, err)
	}
	return row, nil
}

// newRow validates and normalizes e into the row that will be hashed and
// stored, so that what is read back hashes the same.
func newRow(e Entry) (meta.AuditEntry, error) {
	if e.Action == "" {
		return meta.AuditEntry{}, fmt.Errorf("%w: action is required", ErrInvalidEntry)
	}
	if len(e.Action) > 64 || len(e.Tenant) > 64 {
		return meta.AuditEntry{}, fmt.Errorf("%w: action and tenant are limited to 64 bytes", ErrInvalidEntry)
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeSuccess
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeDenied, OutcomeError:
	default:
		return meta.AuditEntry{}, fmt.Errorf("%w: outcome %q is not success, denied or error", ErrInvalidEntry, e.Outcome)
	}
	details, err := normalizeDetails(e.Details)
	if err != nil {
		return meta.AuditEntry{}, err
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	return meta.AuditEntry{
		TenantID: clean(e.Tenant),
		Time:     t.UTC().Truncate(time.Microsecond),
		Actor:    clean(e.Actor),
		Role:     clean(e.Role),
		Action:   clean(e.Action),
		Target:   clean(e.Target),
		Source:   clean(e.Source),
		Outcome:  e.Outcome,
		Details:  meta.NewJSON(details),
	}, nil
}

// clean makes s storable unchanged by every database: valid UTF-8 without
// NUL bytes (PostgreSQL text rejects both).
func clean(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// normalizeDetails returns d as it will read back from the database: the
// result of a JSON round trip (numbers become float64, structs maps).
func normalizeDetails(d map[string]any) (map[string]any, error) {
	if len(d) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%w: details: %v", ErrInvalidEntry, err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%w: details: %v", ErrInvalidEntry, err)
	}
	return out, nil
}

// Hash returns the hex SHA-256 of an entry's canonical encoding (version
// 1): the domain "custodian-audit-v1\n", then each field as a 4-byte
// big-endian length and its bytes, in this order: seq (decimal), tenant,
// time (RFC 3339, UTC, to the microsecond), actor, role, action, target,
// source, outcome, details (JSON with sorted keys, "{}" when empty),
// prev_hash. The stored Hash field itself is not covered.
func Hash(e meta.AuditEntry) string {
	h := sha256.New()
	h.Write([]byte(hashDomain))
	var n [4]byte
	field := func(s string) {
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(strconv.FormatInt(e.Seq, 10))
	field(e.TenantID)
	field(e.Time.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano))
	field(e.Actor)
	field(e.Role)
	field(e.Action)
	field(e.Target)
	field(e.Source)
	field(e.Outcome)
	field(canonicalDetails(e.Details.V))
	field(e.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

func canonicalDetails(d map[string]any) string {
	if len(d) == 0 {
		return "{}"
	}
	b, err := json.Marshal(d) // map keys are sorted
	if err != nil {
		// A stored value always re-encodes; this cannot match any hash.
		return "!unencodable:" + err.Error()
	}
	return string(b)
}

// Head returns the sequence number and hash of the last entry (0 and
// GenesisHash for an empty chain). Keep it outside the database to detect
// a truncated chain.
func Head(ctx context.Context, db *gorm.DB) (int64, string, error) {
	var head []meta.AuditEntry
	if err := db.WithContext(ctx).Select("seq", "hash").Order("seq DESC").Limit(1).Find(&head).Error; err != nil {
		return 0, "", fmt.Errorf("audit: head: %w", err)
	}
	if len(head) == 0 {
		return 0, GenesisHash, nil
	}
	return head[0].Seq, head[0].Hash, nil
}
