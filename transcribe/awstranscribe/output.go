package awstranscribe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/custodian/custodian/transcribe"
)

// ErrBadOutput is wrapped by errors for a job output that is not
// Amazon Transcribe's transcript JSON. The error never quotes the output.
var ErrBadOutput = errors.New("awstranscribe: unusable job output")

// output is the transcript file a batch job writes:
//
//	{"jobName": "...", "accountId": "...", "status": "COMPLETED",
//	 "results": {"transcripts": [{"transcript": "Hello, world."}],
//	   "items": [{"type": "pronunciation", "start_time": "0.04", "end_time": "0.5",
//	              "alternatives": [{"confidence": "0.99", "content": "Hello"}]},
//	             {"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": ","}]}]}}
//
// Times and confidences are decimal strings.
type output struct {
	JobName string `json:"jobName"`
	Results *struct {
		Transcripts []struct {
			Transcript string `json:"transcript"`
		} `json:"transcripts"`
		Items []outputItem `json:"items"`
	} `json:"results"`
}

type outputItem struct {
	Type         string   `json:"type"`
	StartTime    *decimal `json:"start_time"`
	EndTime      *decimal `json:"end_time"`
	Alternatives []outAlt `json:"alternatives"`
}

type outAlt struct {
	Content    string   `json:"content"`
	Confidence *decimal `json:"confidence"`
}

// decimal reads a number written as a JSON string ("0.04", Amazon's form)
// or as a JSON number.
type decimal float64

func (d *decimal) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		s = str
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return errors.New("not a finite number")
	}
	*d = decimal(f)
	return nil
}

// parseOutput turns a job's transcript JSON into words with times in
// milliseconds, clamped to [0, durMS]. Pronunciation items become words
// (alternatives[0]); punctuation items attach to the preceding word
// ("Hello" "," → "Hello,"), as the transcript text shows them.
func parseOutput(body []byte, durMS int64) ([]transcribe.Word, error) {
	var o output
	if err := json.Unmarshal(body, &o); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("%w: not JSON (syntax error at byte %d)", ErrBadOutput, syn.Offset)
		}
		return nil, fmt.Errorf("%w: unexpected structure", ErrBadOutput)
	}
	if o.Results == nil {
		return nil, fmt.Errorf("%w: no results", ErrBadOutput)
	}
	var words []transcribe.Word
	for i, it := range o.Results.Items {
		if len(it.Alternatives) == 0 {
			return nil, fmt.Errorf("%w: item %d has no alternatives", ErrBadOutput, i)
		}
		alt := it.Alternatives[0]
		content := strings.TrimSpace(alt.Content)
		switch it.Type {
		case "punctuation":
			if n := len(words); n > 0 && content != "" {
				words[n-1].Word += content
			}
		case "pronunciation":
			if it.StartTime == nil || it.EndTime == nil {
				return nil, fmt.Errorf("%w: item %d has no start_time or end_time", ErrBadOutput, i)
			}
			if content == "" {
				continue
			}
			conf := 1.0
			if alt.Confidence != nil {
				conf = clamp01(float64(*alt.Confidence))
			}
			words = append(words, transcribe.Word{
				StartMS:    secondsToMS(float64(*it.StartTime)),
				EndMS:      secondsToMS(float64(*it.EndTime)),
				Word:       content,
				Confidence: conf,
			})
		default:
			return nil, fmt.Errorf("%w: item %d has unknown type", ErrBadOutput, i)
		}
	}
	var prev int64
	for i := range words {
		w := &words[i]
		w.StartMS = min(max(w.StartMS, prev), durMS)
		w.EndMS = min(max(w.EndMS, w.StartMS), durMS)
		prev = w.StartMS
	}
	return words, nil
}

func secondsToMS(s float64) int64 {
	if s < 0 {
		return 0
	}
	if s > 1e9 {
		return 1e12
	}
	return int64(math.Round(s * 1000))
}

func clamp01(p float64) float64 {
	switch {
	case math.IsNaN(p) || p < 0:
		return 0
	case p > 1:
		return 1
	}
	return p
}
