package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// ErrInvalidCursor is returned by List for a cursor it did not issue.
var ErrInvalidCursor = errors.New("audit: invalid cursor")

// Limits of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Filter selects entries for List. Empty fields do not filter.
type Filter struct {
	Tenant  string
	Actor   string
	Action  string
	Target  string
	Outcome string
	From    time.Time // inclusive
	To      time.Time // exclusive
	// Limit is the page size (default 100, at most 1000).
	Limit int
	// Cursor continues a previous List (its nextCursor).
	Cursor string
}

const cursorPrefix = "a1:"

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return 0, ErrInvalidCursor
	}
	seq, err := strconv.ParseInt(strings.TrimPrefix(string(b), cursorPrefix), 10, 64)
	if err != nil || seq < 1 {
		return 0, ErrInvalidCursor
	}
	return seq, nil
}

// List returns entries matching f, newest first, and a cursor for the
// next page ("" when there is none).
func List(ctx context.Context, db *gorm.DB, f Filter) ([]meta.AuditEntry, string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	q := db.WithContext(ctx).Model(&meta.AuditEntry{})
	if f.Cursor != "" {
		before, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		q = q.Where("seq < ?", before)
	}
	for col, v := range map[string]string{"tenant_id": f.Tenant, "actor": f.Actor, "action": f.Action,
		"target": f.Target, "outcome": f.Outcome} {
		if v != "" {
			q = q.Where(col+" = ?", v)
		}
	}
	if !f.From.IsZero() {
		q = q.Where(`"time" >= ?`, f.From.UTC())
	}
	if !f.To.IsZero() {
		q = q.Where(`"time" < ?`, f.To.UTC())
	}
	var rows []meta.AuditEntry
	if err := q.Order("seq DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].Seq)
	}
	return rows, next, nil
}
