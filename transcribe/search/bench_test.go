package search

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/transcribe"
)

// The search benchmark builds an index of synthetic call transcripts from
// a seeded word generator over a call-center vocabulary, then measures
// query latency. By default (make bench) it uses 10,000 transcripts (1,000
// hours of calls), the corpus the figures are quoted for; with
// CUSTODIAN_BENCH_SMALL=1 it uses 1,000 (100 hours) for a quick look:
//
//	go test ./transcribe/search -run '^$' -bench BenchmarkSearch -benchtime 200x -timeout 2h
//
// Each transcript is one participant's recording of a call of 2 to 10
// minutes (6 on average), speaking about 75 words a minute (half of a
// conversation at 150 words a minute).

// benchVocab is the generator's vocabulary: call-center words first
// (drawn with a Zipf distribution, so the first are the most frequent).
var benchVocab = strings.Fields(`
the you i to and a that it is of for my your we in this can on have be with
not what so do is are was will just me at if there yes okay no can't don't
account card payment bill order help number service phone call please thank
customer support agent manager refund credit charge balance fee late due
cancel cancellation upgrade downgrade plan contract subscription renewal
address email password login reset verify confirm identity security code
delivery shipping package parcel tracking return exchange warranty repair
technician appointment schedule tomorrow today monday tuesday wednesday
thursday friday weekend morning afternoon evening week month year time
internet connection outage slow router modem signal wifi speed network
mobile data roaming minutes text message voicemail transfer hold line
price discount offer promotion coupon loyalty points reward premium basic
invoice statement receipt transaction purchase store online website app
problem issue complaint feedback survey escalate supervisor department
policy terms conditions cancel notice period penalty waive exception
insurance claim coverage deductible premium adjust approve deny pending
bank transfer direct debit autopay overdue reminder collection dispute
name date birth last four digits zip postal city street apartment
understand sorry apologize appreciate patience moment check system
record recorded compliance training purposes quality monitored
happy unhappy frustrated angry satisfied disappointed great fine sure
really actually already still again also only maybe probably definitely
would could should might must need want like know think see look get
going come back call calling called said told asked wait waiting
one two three four five six seven eight nine ten hundred thousand
first second third next previous new old current different same
interrupted disconnected restored fixed broken working replaced ordered
`)

// benchPhrases are spoken now and then, so phrase queries find something.
var benchPhrases = []string{
	"cancel my account", "speak to a manager", "late payment fee", "reset my password",
	"the internet keeps dropping", "i want a refund", "this call is being recorded",
	"confirm the last four digits", "your contract ends", "waive the late fee",
}

var benchDepartments = []string{"sales", "support", "billing", "retention", "technical"}

type benchCorpus struct {
	docs  []Document
	words int
	hours float64
	start time.Time
}

// newBenchCorpus generates n transcripts (seeded: the same every run).
func newBenchCorpus(n int) benchCorpus {
	r := rand.New(rand.NewPCG(2026, 7))
	zipf := rand.NewZipf(r, 1.07, 2, uint64(len(benchVocab)-1))
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	c := benchCorpus{start: start}
	rules := []*policy.Access{nil, nil, nil, {Roles: []string{policy.RoleCompliance, policy.RoleSupervisor}},
		{Departments: []string{"billing"}}}
	for i := range n {
		minutes := 2 + r.Float64()*8
		words := int(minutes * 75)
		callStart := start.Add(time.Duration(i/2) * 13 * time.Minute) // ~ 90 days for 10,000
		tr := transcribe.Transcript{RecordingID: fmt.Sprintf("rec-%05d", i), SessionID: fmt.Sprintf("sess-%05d", i/2),
			ParticipantID: fmt.Sprintf("part-%d", i%2+1), Speaker: []string{"Agent", "Customer"}[i%2]}
		seg := transcribe.Segment{}
		at := int64(r.IntN(2000))
		for w := 0; w < words; {
			if r.IntN(60) == 0 {
				for _, pw := range strings.Fields(benchPhrases[r.IntN(len(benchPhrases))]) {
					d := int64(150 + r.IntN(250))
					seg.Words = append(seg.Words, transcribe.Word{StartMS: at, EndMS: at + d, Word: pw, Confidence: 0.9})
					at += d + int64(r.IntN(80))
					w++
				}
				continue
			}
			d := int64(150 + r.IntN(250))
			seg.Words = append(seg.Words, transcribe.Word{StartMS: at, EndMS: at + d, Word: benchVocab[zipf.Uint64()], Confidence: 0.9})
			at += d + int64(r.IntN(80))
			w++
			if r.IntN(12) == 0 { // a pause: the other side talks
				at += int64(2000 + r.IntN(6000))
			}
		}
		tr.Segments = []transcribe.Segment{seg}
		dept := benchDepartments[(i/2)%len(benchDepartments)]
		d := NewDocument(tr, "bench", dept, callStart, int64(r.IntN(3000)), rules[(i/2)%len(rules)])
		c.docs = append(c.docs, d)
		c.words += len(d.Words)
		c.hours += minutes / 60
	}
	return c
}

type benchIndex struct {
	x         *Index
	dir       string
	c         benchCorpus
	buildTime time.Duration
	size      int64
}

var (
	benchOnce sync.Once
	benchIdx  *benchIndex
	benchErr  error
)

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// sharedBenchIndex builds the benchmark index once per process.
func sharedBenchIndex(b *testing.B) *benchIndex {
	b.Helper()
	benchOnce.Do(func() {
		n := 10000
		if os.Getenv("CUSTODIAN_BENCH_SMALL") != "" {
			n = 1000
		}
		c := newBenchCorpus(n)
		// CUSTODIAN_BENCH_INDEX_DIR keeps the built index for later runs
		// (profiling); the build figures are then those of the first run.
		dir, reuse := os.Getenv("CUSTODIAN_BENCH_INDEX_DIR"), false
		if dir != "" {
			dir = filepath.Join(dir, fmt.Sprint(n))
			_, err := os.Stat(filepath.Join(dir, "tenants", "bench"))
			reuse = err == nil
		} else {
			var err error
			if dir, err = os.MkdirTemp("", "custodian-search-bench-"); err != nil {
				benchErr = err
				return
			}
		}
		keys := func(ctx context.Context, tenant string) ([]byte, error) {
			k := make([]byte, 32)
			copy(k, "benchmark key for the search ix")
			return k, nil
		}
		x, err := Open(context.Background(), Options{Dir: dir, Key: keys, CompactDelay: time.Hour, CompactMaxDelay: time.Hour})
		if err != nil {
			benchErr = err
			return
		}
		start := time.Now()
		for chunk := range slices.Chunk(c.docs, 200) {
			if reuse {
				break
			}
			if err := x.Apply(context.Background(), "bench", chunk, nil); err != nil {
				benchErr = err
				return
			}
		}
		build := time.Since(start)
		// let bleve's background merges settle before measuring the size
		last, stable := int64(-1), 0
		for stable < 6 {
			time.Sleep(500 * time.Millisecond)
			if n := dirSize(dir); n == last {
				stable++
			} else {
				last, stable = n, 0
			}
		}
		benchIdx = &benchIndex{x: x, dir: dir, c: c, buildTime: build, size: last}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchIdx
}

// latencies runs fn b.N times and reports p50 and p95 in milliseconds.
func latencies(b *testing.B, fn func(i int) error) {
	b.Helper()
	var ds []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if err := fn(i); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		i++
	}
	b.StopTimer()
	slices.Sort(ds)
	pct := func(p float64) float64 {
		return float64(ds[min(int(p*float64(len(ds))), len(ds)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
}

func BenchmarkSearch(b *testing.B) {
	bi := sharedBenchIndex(b)
	b.Run("build", func(b *testing.B) {
		// The build ran once (sharedBenchIndex); report its figures.
		for b.Loop() {
		}
		b.ReportMetric(float64(len(bi.c.docs)), "transcripts")
		b.ReportMetric(bi.c.hours, "audio-hours")
		b.ReportMetric(float64(bi.c.words)/bi.buildTime.Seconds(), "words/s")
		b.ReportMetric(bi.buildTime.Seconds(), "build-s")
		b.ReportMetric(float64(bi.size)/(1<<20), "index-MiB")
		b.ReportMetric(float64(bi.size)/bi.c.hours/(1<<10), "KiB/audio-hour")
	})
	r := rand.New(rand.NewPCG(1, 2))
	admin := Access{Tenant: "bench", AllDepartments: true, Role: policy.RoleAdmin}
	run := func(req Request) error {
		_, err := bi.x.Search(context.Background(), req)
		return err
	}
	words := benchVocab[:200] // frequent to rare
	b.Run("word", func(b *testing.B) {
		latencies(b, func(i int) error {
			return run(Request{Access: admin, Query: mustBenchQuery(words[r.IntN(len(words))])})
		})
	})
	b.Run("phrase2", func(b *testing.B) {
		latencies(b, func(i int) error {
			d := bi.c.docs[r.IntN(len(bi.c.docs))]
			j := r.IntN(len(d.Words) - 1)
			return run(Request{Access: admin, Query: mustBenchQuery(`"` + d.Words[j].Word + " " + d.Words[j+1].Word + `"`)})
		})
	})
	b.Run("phrase-known", func(b *testing.B) {
		latencies(b, func(i int) error {
			return run(Request{Access: admin, Query: mustBenchQuery(`"` + benchPhrases[r.IntN(len(benchPhrases))] + `"`)})
		})
	})
	b.Run("filtered", func(b *testing.B) {
		latencies(b, func(i int) error {
			dept := benchDepartments[r.IntN(len(benchDepartments))]
			span := bi.c.docs[len(bi.c.docs)-1].RecordedAt.Sub(bi.c.start)
			from := bi.c.start.Add(time.Duration(r.Int64N(int64(span))))
			sup := Access{Tenant: "bench", Departments: []string{dept}, Role: policy.RoleSupervisor, Department: dept}
			return run(Request{Access: sup, Query: mustBenchQuery(words[r.IntN(len(words))] + " -" + words[r.IntN(len(words))]),
				From: from, To: from.Add(span / 3), Sort: SortTime})
		})
	})
	b.Run("page3", func(b *testing.B) {
		latencies(b, func(i int) error {
			q := mustBenchQuery(words[r.IntN(20)])
			res, err := bi.x.Search(context.Background(), Request{Access: admin, Query: q})
			for range 2 {
				if err != nil || res.NextCursor == "" {
					return err
				}
				res, err = bi.x.Search(context.Background(), Request{Access: admin, Query: q, Cursor: res.NextCursor})
			}
			return err
		})
	})
}

// BenchmarkSearchPurge measures the purge that follows a deletion: every
// file of the tenant's index rewritten under a new key.
func BenchmarkSearchPurge(b *testing.B) {
	bi := sharedBenchIndex(b)
	i := 0
	for b.Loop() {
		id := bi.c.docs[i].RecordingID
		if err := bi.x.Apply(context.Background(), "bench", nil, []string{id}); err != nil {
			b.Fatal(err)
		}
		if err := bi.x.Compact(context.Background(), "bench"); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(dirSize(bi.dir))/(1<<20), "index-MiB-after")
}

func mustBenchQuery(s string) *Query {
	q, err := ParseQuery(s)
	if err != nil {
		panic(err)
	}
	return q
}

// TestMain removes the benchmark's index (unless kept on purpose).
func TestMain(m *testing.M) {
	code := m.Run()
	if benchIdx != nil && os.Getenv("CUSTODIAN_BENCH_INDEX_DIR") == "" {
		benchIdx.x.Close()
		os.RemoveAll(benchIdx.dir)
	}
	os.Exit(code)
}
