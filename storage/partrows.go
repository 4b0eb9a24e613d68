package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/custodian/custodian/storage/meta"
)

// Part rows (meta.Part) are written in batches: new rows and "uploaded"
// marks go to a queue that one goroutine flushes in a single transaction
// every rowFlushEvery (or at rowFlushMax operations), instead of one
// statement, with its WAL write, per part and another per upload. The
// rows describe what the spool and the blob store hold and may lag them
// by a flush: crash recovery makes them match (Recover), Writer.Close and
// Store.Flush flush them, and a part's upload mark can never be lost to a
// race with its own insert, because the insert is queued before the part
// can be uploaded.
const (
	rowFlushEvery = 200 * time.Millisecond
	rowFlushMax   = 256
)

// rowOp is a queued row insert (row set) or uploaded mark.
type rowOp struct {
	insert bool
	row    meta.Part // insert: the row; mark: RecordingID and N
	w      *Writer   // insert: told when its row could not be stored
	// ready: the part is durable in the spool (inserts wait until then);
	// flushing: taken by a flush (a mark arriving now must be a separate
	// update).
	ready, flushing bool
	seq             uint64
}

// partRows is the Store's part-row queue.
type partRows struct {
	db  *gorm.DB
	log *slog.Logger

	mu      sync.Mutex
	seq     uint64 // of the last operation queued
	pending []*rowOp
	byPart  map[string]*rowOp // "recording/n" → its queued insert
	changed chan struct{}     // closed and replaced when a flush ends
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	running bool // the flusher goroutine runs
	closed  bool // no flusher any more: flush writes synchronously
}

func newPartRows(db *gorm.DB, log *slog.Logger) *partRows {
	return &partRows{db: db, log: log, byPart: map[string]*rowOp{}, changed: make(chan struct{}),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func partKey(rec string, n int) string { return rec + "/" + strconv.Itoa(n) }

// reserve queues the insert of part n of w's recording before the part
// is spooled; ready or cancel it after.
func (q *partRows) reserve(w *Writer, n int) *rowOp {
	op := &rowOp{insert: true, w: w, row: meta.Part{RecordingID: w.rec, N: n}}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	op.seq = q.seq
	q.pending = append(q.pending, op)
	q.byPart[partKey(w.rec, n)] = op
	q.start()
	return op
}

// ready fills in the row of a spooled part; it is written with the next
// flush.
func (q *partRows) ready(op *rowOp, p PartInfo) {
	q.mu.Lock()
	op.row.CipherSHA256, op.row.CipherSize = p.CipherSHA256, p.CipherSize
	op.row.PlainSize, op.row.PlainOffset = p.PlainSize, p.PlainOffset
	op.ready = true
	n := len(q.pending)
	q.mu.Unlock()
	if n >= rowFlushMax {
		q.poke()
	}
}

// cancel drops the insert of a part that was not spooled.
func (q *partRows) cancel(op *rowOp) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, o := range q.pending {
		if o == op {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			break
		}
	}
	if k := partKey(op.row.RecordingID, op.row.N); q.byPart[k] == op {
		delete(q.byPart, k)
	}
}

// markUploaded records that part n of recording rec reached the blob
// store: in its queued insert if it has one, else as an update.
func (q *partRows) markUploaded(rec string, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if op := q.byPart[partKey(rec, n)]; op != nil && !op.flushing {
		op.row.Uploaded = true
		return
	}
	q.seq++
	q.pending = append(q.pending, &rowOp{ready: true, seq: q.seq, row: meta.Part{RecordingID: rec, N: n}})
	q.start()
}

func (q *partRows) poke() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// start starts the flusher on first use. q.mu must be held.
func (q *partRows) start() {
	if !q.running && !q.closed {
		q.running = true
		go q.run()
	}
}

func (q *partRows) run() {
	defer close(q.done)
	tk := time.NewTicker(rowFlushEvery)
	defer tk.Stop()
	for {
		select {
		case <-q.stop:
			q.flushOnce(context.Background())
			return
		case <-tk.C:
		case <-q.kick:
		}
		q.flushOnce(context.Background())
	}
}

// flush writes every ready operation queued before the call, and waits
// for it (or ctx). Operations queued meanwhile do not prolong the wait.
func (q *partRows) flush(ctx context.Context) error {
	q.mu.Lock()
	target := q.seq
	q.mu.Unlock()
	for {
		q.mu.Lock()
		waiting := false
		for _, op := range q.pending {
			if op.ready && op.seq <= target {
				waiting = true
				break
			}
		}
		ch := q.changed
		running := q.running
		q.mu.Unlock()
		if !waiting {
			return nil
		}
		if !running {
			q.flushOnce(ctx)
			continue
		}
		q.poke()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("storage: flush part rows: %w", ctx.Err())
		}
	}
}

// close flushes and stops the flusher; it may be called more than once.
// Later operations are written by flush calls (Writer.Close).
func (q *partRows) close() {
	q.mu.Lock()
	running, closed := q.running, q.closed
	q.closed = true
	q.mu.Unlock()
	if running && !closed {
		close(q.stop)
		<-q.done
		q.mu.Lock()
		q.running = false
		q.mu.Unlock()
	}
}

// flushOnce writes the ready operations in one transaction: inserts
// (upserts: Recover may have written the row), then uploaded marks
// grouped by recording. Inserts not ready yet stay queued.
func (q *partRows) flushOnce(ctx context.Context) {
	q.mu.Lock()
	var inserts []meta.Part
	var insertOps []*rowOp
	marks := map[string][]int{}
	var rest []*rowOp
	for _, op := range q.pending {
		switch {
		case !op.ready:
			rest = append(rest, op)
		case op.insert:
			op.flushing = true
			inserts = append(inserts, op.row)
			insertOps = append(insertOps, op)
		default:
			marks[op.row.RecordingID] = append(marks[op.row.RecordingID], op.row.N)
		}
	}
	q.pending = rest
	q.mu.Unlock()
	if len(inserts) == 0 && len(marks) == 0 {
		q.signal()
		return
	}
	err := q.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if len(inserts) > 0 {
			if err := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "recording_id"}, {Name: "n"}},
				DoUpdates: clause.AssignmentColumns([]string{"cipher_sha256", "cipher_size", "plain_size", "plain_offset", "uploaded"}),
			}).CreateInBatches(inserts, 200).Error; err != nil {
				return err
			}
		}
		for rec, ns := range marks {
			if err := tx.Model(&meta.Part{}).Where("recording_id = ? AND n IN ?", rec, ns).Update("uploaded", true).Error; err != nil {
				return err
			}
		}
		return nil
	})
	q.mu.Lock()
	for _, op := range insertOps {
		if k := partKey(op.row.RecordingID, op.row.N); q.byPart[k] == op {
			delete(q.byPart, k)
		}
	}
	q.mu.Unlock()
	if err != nil {
		// The parts are durable; their rows are informational. Writers
		// repair theirs at Close, Recover after a crash.
		q.log.Warn("cannot store part rows", "rows", len(inserts), "uploaded_marks", len(marks), "err", err)
		for _, op := range insertOps {
			op.w.noteRowsMissing()
		}
	}
	q.signal()
}

func (q *partRows) signal() {
	q.mu.Lock()
	close(q.changed)
	q.changed = make(chan struct{})
	q.mu.Unlock()
}
