package search

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/token/porter"
	"github.com/blevesearch/bleve/v2/analysis/token/shingle"
	unitok "github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/transcribe"
)

// Document granularity: one index document per recording (one
// participant's side of a call), holding every word of its transcript in
// spoken order in one analyzed field with term vectors, and a stored word
// table (byte offset in that field, start and end on the session clock).
// A hit is a recording; its moments are found from the term locations of
// the match (byte offsets) mapped through the word table to word times.
// So AND, OR and exclusions apply to the whole recording ("calls where the
// customer said cancel but not refund"), phrases match across the
// utterance boundaries of the engine, and deleting a recording deletes
// exactly one document.

// Field names of index documents.
const (
	fieldText        = "text"        // analyzed words, term vectors, stored
	fieldBigrams     = "text2"       // the same words as overlapping pairs (phrase ranking)
	fieldWords       = "wt"          // stored word table (base64)
	fieldSession     = "session"     // keyword, stored
	fieldParticipant = "participant" // keyword, stored
	fieldDepartment  = "dept"        // keyword, stored
	fieldACL         = "acl"         // keyword: who the policy lets read it
	fieldSpeaker     = "speaker"     // stored
	fieldRecordedAt  = "at"          // recording start, Unix ms: numeric, doc values, stored
	fieldOffset      = "off"         // recording start on the session clock (ms), stored
	fieldVersion     = "ver"         // stored: hash of the transcript object indexed
	fieldRecording   = "rid"         // keyword with doc values: sort tie-break without loading stored ids
)

// analyzerName is the English analysis of transcripts and queries:
// Unicode word segmentation, possessives removed, lower case, Porter
// stemming. Stop words are kept so phrases are matched exactly ("cancel
// my account" does not match "cancel the account").
const analyzerName = "custodian_en"

// bigramAnalyzer is analyzerName followed by pairs of consecutive terms
// ("cancel my", "my account"), indexed in fieldBigrams. A two-word phrase
// is then one term lookup, and a longer phrase a phrase of pairs, whose
// positions are far fewer than those of its (often very common) words:
// phrases are ranked over all recordings without reading the positions of
// common words (phrases of frequent words were the slowest queries).
const bigramAnalyzer = "custodian_en_bigram"

// ACL terms (see aclTerms).
const (
	aclCompliance    = "compliance"
	aclSupervisorAll = "supervisor:*"
	aclSupervisorDep = "supervisor:"
)

// Document is what the index holds for one recording's transcript.
type Document struct {
	Tenant        string
	RecordingID   string
	SessionID     string
	ParticipantID string
	Speaker       string
	Department    string
	// RecordedAt is the wall-clock time of the recording's first packet;
	// StartOffsetMS is the same instant on the session clock.
	RecordedAt    time.Time
	StartOffsetMS int64
	// Access is the access rule of the recording's stored policy decision
	// (nil: no narrowing).
	Access *policy.Access
	// Words in spoken order, times on the session clock.
	Words []transcribe.Word
	// Version identifies the transcript object indexed (its sealed
	// SHA-256): re-indexing the same version is skipped.
	Version string
}

// NewDocument builds the document of a transcript (already redacted when
// its policy said so: the index holds exactly the stored transcript).
// Segments without word times get their text's words spread evenly over
// the segment.
func NewDocument(t transcribe.Transcript, tenant, department string, recordedAt time.Time, startOffsetMS int64, access *policy.Access) Document {
	d := Document{
		Tenant: tenant, RecordingID: t.RecordingID, SessionID: t.SessionID, ParticipantID: t.ParticipantID,
		Speaker: t.Speaker, Department: department, RecordedAt: recordedAt, StartOffsetMS: startOffsetMS,
		Access: access,
	}
	for _, s := range t.Segments {
		if len(s.Words) > 0 {
			d.Words = append(d.Words, s.Words...)
			continue
		}
		words := strings.Fields(s.Text)
		if len(words) == 0 {
			continue
		}
		span := max(s.EndMS-s.StartMS, 0)
		for i, w := range words {
			st := s.StartMS + span*int64(i)/int64(len(words))
			en := s.StartMS + span*int64(i+1)/int64(len(words))
			d.Words = append(d.Words, transcribe.Word{StartMS: st, EndMS: en, Word: w})
		}
	}
	return d
}

// aclTerms lists the terms that let roles read a recording under its
// policy's access rule, mirroring policy.CanAccess: admin always reads
// (no term needed); compliance when the rule's roles are empty or name
// it; a supervisor when the roles are empty or name supervisor and the
// rule's departments are empty ("supervisor:*") or name the supervisor's
// department ("supervisor:DEPT").
func aclTerms(a *policy.Access) []string {
	var roles, deps []string
	if a != nil {
		roles, deps = a.Roles, a.Departments
	}
	roleOK := func(r string) bool { return len(roles) == 0 || slices.Contains(roles, r) }
	var out []string
	if roleOK(policy.RoleCompliance) {
		out = append(out, aclCompliance)
	}
	if roleOK(policy.RoleSupervisor) {
		if len(deps) == 0 {
			out = append(out, aclSupervisorAll)
		}
		for _, d := range deps {
			out = append(out, aclSupervisorDep+d)
		}
	}
	if len(out) == 0 {
		out = []string{"none"} // admin only
	}
	return out
}

// word is one entry of a stored word table.
type word struct {
	off        int // byte offset of the word in the text field
	length     int // bytes
	start, end int64
}

// fields renders d as the field map bleve indexes.
func (d Document) fields() map[string]any {
	var text strings.Builder
	var tbl []byte
	var n [binary.MaxVarintLen64]byte
	count := 0
	prevOff, prevStart := 0, int64(0)
	body := []byte{}
	for _, w := range d.Words {
		s := cleanWord(w.Word)
		if s == "" {
			continue
		}
		if text.Len() > 0 {
			text.WriteByte(' ')
		}
		off := text.Len()
		text.WriteString(s)
		body = append(body, n[:binary.PutUvarint(n[:], uint64(off-prevOff))]...)
		body = append(body, n[:binary.PutVarint(n[:], w.StartMS-prevStart)]...)
		body = append(body, n[:binary.PutUvarint(n[:], uint64(max(w.EndMS-w.StartMS, 0)))]...)
		prevOff, prevStart = off, w.StartMS
		count++
	}
	tbl = append(tbl, n[:binary.PutUvarint(n[:], uint64(count))]...)
	tbl = append(tbl, body...)
	return map[string]any{
		fieldText:        text.String(),
		fieldBigrams:     text.String(),
		fieldWords:       base64.RawStdEncoding.EncodeToString(tbl),
		fieldSession:     d.SessionID,
		fieldParticipant: d.ParticipantID,
		fieldDepartment:  d.Department,
		fieldACL:         aclTerms(d.Access),
		fieldSpeaker:     d.Speaker,
		fieldRecordedAt:  float64(d.RecordedAt.UnixMilli()),
		fieldOffset:      float64(d.StartOffsetMS),
		fieldVersion:     d.Version,
		fieldRecording:   d.RecordingID,
	}
}

// cleanWord turns a recognized word into one token of the text field:
// whitespace and control characters inside it become '_' so the word
// table's offsets stay exact.
func cleanWord(s string) string {
	s = strings.TrimSpace(s)
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, s)
}

var errWordTable = errors.New("search: corrupt word table")

// decodeWords parses a stored word table; lengths are filled from text.
func decodeWords(enc, text string) ([]word, error) {
	b, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errWordTable
	}
	count, k := binary.Uvarint(b)
	if k <= 0 || count > uint64(len(b)) {
		return nil, errWordTable
	}
	b = b[k:]
	out := make([]word, 0, count)
	off, start := 0, int64(0)
	for range count {
		do, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return nil, errWordTable
		}
		b = b[k1:]
		ds, k2 := binary.Varint(b)
		if k2 <= 0 {
			return nil, errWordTable
		}
		b = b[k2:]
		dur, k3 := binary.Uvarint(b)
		if k3 <= 0 {
			return nil, errWordTable
		}
		b = b[k3:]
		off += int(do)
		start += ds
		if off < 0 || off > len(text) {
			return nil, errWordTable
		}
		out = append(out, word{off: off, start: start, end: start + int64(dur)})
	}
	for i := range out {
		end := len(text)
		if i+1 < len(out) {
			end = out[i+1].off - 1
		}
		if end < out[i].off {
			return nil, errWordTable
		}
		out[i].length = end - out[i].off
	}
	return out, nil
}

// wordAt returns the index of the word holding byte offset off.
func wordAt(words []word, off int) int {
	i := sort.Search(len(words), func(i int) bool { return words[i].off > off }) - 1
	return max(i, 0)
}

// newMapping returns the index mapping: a static document mapping with
// the fields above, the English analyzer, TF-IDF scoring.
func newMapping() (*mapping.IndexMappingImpl, error) {
	im := bleve.NewIndexMapping()
	if err := im.AddCustomAnalyzer(analyzerName, map[string]any{
		"type":          custom.Name,
		"tokenizer":     unitok.Name,
		"token_filters": []any{en.PossessiveName, lowercase.Name, porter.Name},
	}); err != nil {
		return nil, fmt.Errorf("search: analyzer: %w", err)
	}
	if err := im.AddCustomTokenFilter("custodian_pairs", map[string]any{
		"type": shingle.Name, "min": 2.0, "max": 2.0, "output_original": false, "separator": " ", "filler": "",
	}); err != nil {
		return nil, fmt.Errorf("search: pair filter: %w", err)
	}
	if err := im.AddCustomAnalyzer(bigramAnalyzer, map[string]any{
		"type":          custom.Name,
		"tokenizer":     unitok.Name,
		"token_filters": []any{en.PossessiveName, lowercase.Name, porter.Name, "custodian_pairs"},
	}); err != nil {
		return nil, fmt.Errorf("search: analyzer: %w", err)
	}
	im.DefaultAnalyzer = analyzerName
	// TF-IDF (Lucene classic): bleve 2.6 computes BM25's average field
	// length from the dictionary size, which over-penalizes long calls.
	im.ScoringModel = index.TFIDFScoring
	im.StoreDynamic = false
	im.IndexDynamic = false
	im.DocValuesDynamic = false

	text := bleve.NewTextFieldMapping()
	text.Analyzer = analyzerName
	text.Store = true
	text.IncludeTermVectors = true
	text.IncludeInAll = false
	text.DocValues = false

	pairs := bleve.NewTextFieldMapping()
	pairs.Analyzer = bigramAnalyzer
	pairs.Store = false
	pairs.IncludeTermVectors = true // positions: a longer phrase is a phrase of pairs
	pairs.IncludeInAll = false
	pairs.DocValues = false

	kw := func(store bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Analyzer = keyword.Name
		f.Store = store
		f.IncludeInAll = false
		f.IncludeTermVectors = false
		f.DocValues = false
		return f
	}
	storedOnly := func() *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = keyword.Name
		f.Index = false
		f.Store = true
		f.IncludeInAll = false
		f.IncludeTermVectors = false
		f.DocValues = false
		return f
	}
	at := bleve.NewNumericFieldMapping()
	at.Index = true
	at.Store = true
	at.DocValues = true
	at.IncludeInAll = false
	off := bleve.NewNumericFieldMapping()
	off.Index = false
	off.Store = true
	off.DocValues = false
	off.IncludeInAll = false

	dm := bleve.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt(fieldText, text)
	dm.AddFieldMappingsAt(fieldBigrams, pairs)
	dm.AddFieldMappingsAt(fieldWords, storedOnly())
	dm.AddFieldMappingsAt(fieldSession, kw(true))
	dm.AddFieldMappingsAt(fieldParticipant, kw(true))
	dm.AddFieldMappingsAt(fieldDepartment, kw(true))
	dm.AddFieldMappingsAt(fieldACL, kw(false))
	dm.AddFieldMappingsAt(fieldSpeaker, storedOnly())
	dm.AddFieldMappingsAt(fieldRecordedAt, at)
	dm.AddFieldMappingsAt(fieldOffset, off)
	dm.AddFieldMappingsAt(fieldVersion, storedOnly())
	rid := kw(false)
	rid.DocValues = true
	dm.AddFieldMappingsAt(fieldRecording, rid)
	im.DefaultMapping = dm
	im.TypeMapping = nil
	return im, nil
}
