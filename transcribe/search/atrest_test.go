package search

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
)

// Canary words: distinctive, so that any occurrence in a file can only
// come from the transcripts of these tests. Each is checked as spoken, in
// lower and upper case, and as the analyzer's term (stemmed), the form a
// term dictionary holds.
var (
	liveCanaries    = []string{"Quetzalcoatlus", "xylophonists", "Zanzibarite"}
	deletedCanaries = []string{"Brontotherium", "marzipanning", "Vuvuzelas"}
)

// canaryForms returns every form of the canaries to look for.
func canaryForms(x *Index, words []string) [][]byte {
	var out [][]byte
	for _, w := range words {
		forms := []string{w, strings.ToLower(w), strings.ToUpper(w)}
		forms = append(forms, x.terms(w)...)
		for _, f := range forms {
			if len(f) >= 5 {
				out = append(out, []byte(f))
			}
		}
	}
	return out
}

// scanDir returns the files under dir holding any of the forms (matched
// case-insensitively, and also in every snappy-decodable chunk).
func scanDir(t *testing.T, dir string, forms [][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if f := containsAny(b, forms); f != "" {
			found = append(found, path+": "+f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func containsAny(b []byte, forms [][]byte) string {
	lb := bytes.ToLower(b)
	for _, f := range forms {
		if bytes.Contains(lb, bytes.ToLower(f)) {
			return string(f)
		}
	}
	return ""
}

// chunkLog records the plaintext of every chunk sealed for files under a
// directory (what the files hold once decrypted).
type chunkLog struct {
	mu     sync.Mutex
	prefix string
	chunks map[string][][]byte // file path → plaintext chunks
	sealed map[string][][]byte // file path → sealed chunks
}

func watchChunks(t *testing.T, dir string) *chunkLog {
	t.Helper()
	abs, _ := filepath.Abs(dir)
	l := &chunkLog{prefix: abs, chunks: map[string][][]byte{}, sealed: map[string][][]byte{}}
	fn := func(path string, plaintext, sealed []byte) {
		if !strings.HasPrefix(path, l.prefix) {
			return
		}
		l.mu.Lock()
		l.chunks[path] = append(l.chunks[path], bytes.Clone(plaintext))
		l.sealed[path] = append(l.sealed[path], bytes.Clone(sealed))
		l.mu.Unlock()
	}
	observeWrite.Store(&fn)
	t.Cleanup(func() { observeWrite.Store(nil) })
	return l
}

// holding returns the files (of the given set, or all) whose decrypted
// chunks hold any form, raw or snappy-decoded.
func (l *chunkLog) holding(forms [][]byte, only func(path string) bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for path, cs := range l.chunks {
		if only != nil && !only(path) {
			continue
		}
		for _, c := range cs {
			f := containsAny(c, forms)
			if f == "" {
				if d, err := snappy.Decode(nil, c); err == nil {
					f = containsAny(d, forms)
				}
			}
			if f != "" {
				out = append(out, filepath.Base(path)+": "+f)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// termsInDictionary returns which forms the tenant index's term dictionary
// for the text field holds (deleted documents' terms stay in a segment's
// dictionary until it is rewritten).
func termsInDictionary(t *testing.T, x *Index, tenant string, words []string) []string {
	t.Helper()
	ti, err := x.tenant(context.Background(), tenant, false)
	if err != nil || ti == nil {
		t.Fatalf("tenant %s: %v", tenant, err)
	}
	want := map[string]bool{}
	for _, w := range words {
		for _, term := range x.terms(w) {
			want[term] = true
		}
	}
	d, err := ti.bi.FieldDict(fieldText)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var found []string
	for e, err := d.Next(); e != nil || err != nil; e, err = d.Next() {
		if err != nil {
			t.Fatal(err)
		}
		if want[e.Term] {
			found = append(found, e.Term)
		}
	}
	return found
}

func canaryText(words []string) string {
	return "I can confirm the order of " + strings.Join(words, " and ") + " for tomorrow, " +
		strings.Join(words, " ") + " again."
}

func TestNoPlaintextAtRest(t *testing.T) {
	dir := t.TempDir()
	keys := testKeys(t)
	chunks := watchChunks(t, dir)
	x := openTestIndex(t, dir, keys)
	c := newCorpus(t)
	docs := c.docs()
	docs = append(docs, docSpec{rec: "rec-canary", session: "s9", participant: "p9", speaker: "Quetzalcoatlus Smith",
		dept: "sales", at: corpusStart, text: canaryText(liveCanaries)}.doc())
	mustApply(t, x, "t1", docs, nil)
	forms := canaryForms(x, liveCanaries)
	// The index holds the canaries (found by search, in its dictionary and in
	// the chunks it wrote) ...
	res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, "zanzibarite")})
	if len(res.Hits) != 1 || res.Hits[0].Speaker != "Quetzalcoatlus Smith" {
		t.Fatalf("canary recording not found: %+v", res.Hits)
	}
	if got := termsInDictionary(t, x, "t1", liveCanaries); len(got) != len(liveCanaries) {
		t.Fatalf("dictionary holds %v", got)
	}
	if len(chunks.holding(forms, nil)) == 0 {
		t.Fatal("no written chunk held the canaries: the scan below would prove nothing")
	}
	// ... and no file under the index directory holds any form of them,
	// nor a word of the speech samples, while open and after closing.
	sample := [][]byte{[]byte("interrupted"), []byte("thirtieth"), []byte("compliance and training")}
	for _, stage := range []string{"open", "closed"} {
		if stage == "closed" {
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if found := scanDir(t, dir, append(slices.Clone(forms), sample...)); len(found) > 0 {
			t.Fatalf("%s index: plaintext at rest: %v", stage, found)
		}
	}
	// Everything bleve wrote went through the hook: every file in a bleve
	// directory is one the hook sealed chunks for, or a bolt file.
	var unsealed []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(path, string(filepath.Separator)+"bleve"+string(filepath.Separator)) {
			if _, ok := chunks.chunks[path]; !ok && filepath.Base(path) != "root.bolt" {
				unsealed = append(unsealed, path)
			}
		}
		return nil
	})
	if len(unsealed) > 0 {
		t.Fatalf("files written without the encryption hook: %v", unsealed)
	}
	// Reopened with the same keys it answers; with another tenant key it
	// cannot even open the keys file.
	x2 := openTestIndex(t, dir, keys)
	if res := mustSearch(t, x2, Request{Access: adminOf("t1"), Query: mustQuery(t, `"xylophonists and zanzibarite"`)}); len(res.Hits) != 1 {
		t.Fatalf("reopened index: %v", hitIDs(res))
	}
	x2.Close()
	x3, err := Open(context.Background(), Options{Dir: dir, Key: testKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer x3.Close()
	if _, err := x3.tenant(context.Background(), "t1", false); !errors.Is(err, ErrKeysFile) {
		t.Fatalf("open with another tenant key: %v, want ErrKeysFile", err)
	}
}

// noMerges keeps bleve from merging segments in the background, so what a
// deletion leaves on disk stays there until the purge (in production the
// merger may clean some of it up earlier; the purge is what guarantees it).
func noMerges(o *Options) {
	o.mergePlan = map[string]any{"MaxSegmentSize": 1} // no segment is small enough to merge
}

func TestDeletionPurgesIndexFiles(t *testing.T) {
	// Without background merges, what the deletion leaves behind stays
	// until the purge (the premises below are checked); with them, as in
	// production, bleve may already have rewritten some of it.
	t.Run("no background merges", func(t *testing.T) { testDeletionPurges(t, true) })
	t.Run("background merges", func(t *testing.T) { testDeletionPurges(t, false) })
}

func testDeletionPurges(t *testing.T, strict bool) {
	dir := t.TempDir()
	keys := testKeys(t)
	chunks := watchChunks(t, dir)
	var mut []func(*Options)
	if strict {
		mut = append(mut, noMerges)
	}
	x := openTestIndex(t, dir, keys, mut...)
	c := newCorpus(t)
	mustApply(t, x, "t1", c.docs(), nil)
	mustApply(t, x, "t1", []Document{
		docSpec{rec: "rec-shredded", session: "s8", participant: "p8", dept: "sales", at: corpusStart, text: canaryText(deletedCanaries)}.doc(),
		docSpec{rec: "rec-kept", session: "s9", participant: "p9", dept: "sales", at: corpusStart, text: canaryText(liveCanaries)}.doc(),
	}, nil)
	forms := canaryForms(x, deletedCanaries)
	ti, _ := x.tenant(context.Background(), "t1", false)
	var before []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".zap") {
			before = append(before, path)
		}
		return nil
	})
	oldGen := ti.kd.Current

	mustApply(t, x, "t1", nil, []string{"rec-shredded"})
	q := mustQuery(t, "brontotherium OR marzipanning OR vuvuzelas")
	if res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: q}); len(res.Hits) != 0 || res.Total != 0 {
		t.Fatalf("deleted recording still found: %v", hitIDs(res))
	}
	if !slices.Contains(x.PendingPurges(), "t1") {
		t.Fatal("deletion did not schedule a purge")
	}
	// Deleted but not purged: the terms are still in the segments' term
	// dictionaries and in the decrypted files (this is what the purge is for).
	onDisk := func(p string) bool { return exists(p) }
	if strict {
		if got := termsInDictionary(t, x, "t1", deletedCanaries); len(got) == 0 {
			t.Fatal("premise: a deleted document's terms stay in the segment until it is rewritten")
		}
		if len(chunks.holding(forms, onDisk)) == 0 {
			t.Fatal("premise: before the purge the files on disk hold the deleted words (decrypted)")
		}
	}

	if err := x.Compact(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	if got := termsInDictionary(t, x, "t1", deletedCanaries); len(got) > 0 {
		t.Fatalf("after the purge the dictionary still holds %v", got)
	}
	if got := termsInDictionary(t, x, "t1", liveCanaries); len(got) != len(liveCanaries) {
		t.Fatalf("the purge lost live terms: %v", got)
	}
	if got := chunks.holding(forms, onDisk); len(got) > 0 {
		t.Fatalf("after the purge, files on disk decrypt to the deleted words: %v", got)
	}
	for _, p := range before {
		if exists(p) {
			t.Fatalf("segment %s of the old generation still on disk", p)
		}
	}
	if found := scanDir(t, dir, append(forms, canaryForms(x, liveCanaries)...)); len(found) > 0 {
		t.Fatalf("plaintext at rest after the purge: %v", found)
	}
	// Every file now uses the new generation; the old generation key is
	// destroyed in the keys file, so an old file or freed block that
	// survived somewhere cannot be decrypted.
	ids, err := ti.bi.(interface {
		FileWriterIDsInUse() (map[string]struct{}, error)
	}).FileWriterIDsInUse()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ti.kd.Current == oldGen {
		t.Fatalf("writer ids in use %v, current generation %s (old %s)", ids, ti.kd.Current, oldGen)
	}
	if _, ok := ids[writerID(ti.kd.Current)]; !ok {
		t.Fatalf("writer ids in use %v", ids)
	}
	kd, err := readKeys(ti.kfKey, "t1", ti.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(kd.Generations) != 1 || kd.Generations[oldGen] != nil || kd.PurgePending {
		t.Fatalf("keys file after the purge: %d generations, old present %v, pending %v",
			len(kd.Generations), kd.Generations[oldGen] != nil, kd.PurgePending)
	}
	if _, err := readerHook(writerID(oldGen), []byte(filepath.Join(ti.bdir, "store", "000000000001.zap"))); !errors.Is(err, ErrGenerationUnknown) {
		t.Fatalf("old generation still readable: %v", err)
	}
	if slices.Contains(x.PendingPurges(), "t1") {
		t.Fatal("purge still pending")
	}
	// Still a working index, also after reopening.
	x.Close()
	x2 := openTestIndex(t, dir, keys, mut...)
	if res := mustSearch(t, x2, Request{Access: adminOf("t1"), Query: mustQuery(t, "xylophonists")}); len(res.Hits) != 1 {
		t.Fatalf("live canary lost: %v", hitIDs(res))
	}
	if res := mustSearch(t, x2, Request{Access: adminOf("t1"), Query: q}); len(res.Hits) != 0 {
		t.Fatalf("deleted canary back: %v", hitIDs(res))
	}
	if res := mustSearch(t, x2, Request{Access: adminOf("t1"), Query: mustQuery(t, `"cancel my account"`)}); len(res.Hits) != 1 {
		t.Fatalf("corpus lost: %v", hitIDs(res))
	}
}

// A purge interrupted by a crash (deletion committed, purge not run) is
// finished after the next open: the pending flag is in the keys file.
func TestInterruptedPurgeResumesAtOpen(t *testing.T) {
	dir := t.TempDir()
	keys := testKeys(t)
	x := openTestIndex(t, dir, keys)
	mustApply(t, x, "t1", []Document{
		docSpec{rec: "rec-1", session: "s", participant: "p", dept: "d", at: corpusStart, text: canaryText(deletedCanaries)}.doc(),
		docSpec{rec: "rec-2", session: "s", participant: "p", dept: "d", at: corpusStart, text: "thank you"}.doc(),
	}, nil)
	mustApply(t, x, "t1", nil, []string{"rec-1"})
	x.Close() // before the (delayed) purge ran
	x2 := openTestIndex(t, dir, keys, func(o *Options) { o.CompactDelay = 10 * time.Millisecond })
	checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if len(x2.PendingPurges()) > 0 {
			return errors.New("purge pending")
		}
		if got := termsInDictionary(t, x2, "t1", deletedCanaries); len(got) > 0 {
			return errors.New("deleted terms still in the dictionary")
		}
		return nil
	})
}

func TestHooksRefuseUnencryptedFiles(t *testing.T) {
	installHooks()
	if _, _, err := writerHook([]byte(filepath.Join(t.TempDir(), "x.zap"))); !errors.Is(err, ErrUnregisteredPath) {
		t.Fatalf("writer hook outside an index: %v", err)
	}
	if _, _, err := writerHook(nil); !errors.Is(err, ErrUnregisteredPath) {
		t.Fatalf("writer hook without a path: %v", err)
	}
	dir := t.TempDir()
	x := openTestIndex(t, dir, testKeys(t))
	mustApply(t, x, "t1", []Document{docSpec{rec: "r", session: "s", participant: "p", dept: "d", at: corpusStart, text: "hello"}.doc()}, nil)
	ti, _ := x.tenant(context.Background(), "t1", false)
	zap := []byte(filepath.Join(ti.bdir, "store", "000000000009.zap"))
	if _, err := readerHook("", zap); !errors.Is(err, ErrUnencryptedFile) {
		t.Fatalf("reader hook for a file without writer id: %v", err)
	}
	if fn, err := readerHook("", nil); err != nil || fn != nil {
		t.Fatalf("in-memory segments: %v", err)
	}
	// A chunk that does not authenticate is an error, never plaintext.
	_, seal, err := writerHook(zap)
	if err != nil {
		t.Fatal(err)
	}
	open, err := readerHook(writerID(ti.kd.Current), zap)
	if err != nil {
		t.Fatal(err)
	}
	sealed := seal([]byte("cancel my account"))
	if pt, err := open(sealed); err != nil || string(pt) != "cancel my account" {
		t.Fatalf("round trip: %q %v", pt, err)
	}
	for i := range sealed {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		if _, err := open(b); !errors.Is(err, ErrFileAuthentication) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	if _, err := open(sealed[:len(sealed)-1]); !errors.Is(err, ErrFileAuthentication) {
		t.Fatalf("truncated chunk: %v", err)
	}
	// sealed for another tenant's index: wrong associated data
	x2 := openTestIndex(t, t.TempDir(), testKeys(t))
	mustApply(t, x2, "t2", []Document{docSpec{tenant: "t2", rec: "r", session: "s", participant: "p", dept: "d", at: corpusStart, text: "hello"}.doc()}, nil)
	t2, _ := x2.tenant(context.Background(), "t2", false)
	if _, err := readerHook(writerID(ti.kd.Current), []byte(filepath.Join(t2.bdir, "store", "x.zap"))); !errors.Is(err, ErrGenerationUnknown) {
		t.Fatalf("generation of t1 read in t2's index: %v", err)
	}
}

func TestTamperedSegmentIsAnError(t *testing.T) {
	dir := t.TempDir()
	keys := testKeys(t)
	chunks := watchChunks(t, dir)
	x := openTestIndex(t, dir, keys)
	mustApply(t, x, "t1", newCorpus(t).docs(), nil)
	x.Close()
	// Find, in a segment on disk, the sealed chunk of the stored text that
	// holds "interrupted" (rec-c1), and flip one byte in its middle.
	target := [][]byte{[]byte("interrupted")}
	var path string
	var off int
	chunks.mu.Lock()
	for p, pts := range chunks.chunks {
		if !strings.HasSuffix(p, ".zap") || !exists(p) {
			continue
		}
		for i, pt := range pts {
			d, err := snappy.Decode(nil, pt)
			if containsAny(pt, target) == "" && (err != nil || containsAny(d, target) == "") {
				continue
			}
			b, _ := os.ReadFile(p)
			if j := bytes.Index(b, chunks.sealed[p][i]); j >= 0 {
				path, off = p, j+len(chunks.sealed[p][i])/2
			}
		}
	}
	chunks.mu.Unlock()
	if path == "" {
		t.Fatal("no sealed chunk holding the stored text found on disk")
	}
	b, _ := os.ReadFile(path)
	b[off] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	x2, err := Open(context.Background(), Options{Dir: dir, Key: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer x2.Close()
	_, err = x2.Search(context.Background(), Request{Access: adminOf("t1"), Query: mustQuery(t, "interrupted")})
	if !errors.Is(err, ErrFileAuthentication) {
		t.Fatalf("search reading a tampered chunk: %v, want ErrFileAuthentication", err)
	}
}
