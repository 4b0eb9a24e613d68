package janus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/custodian/custodian/storage/meta"
)

// Plugin is the VideoRoom plugin's package name.
const Plugin = "janus.plugin.videoroom"

// ID is a VideoRoom room or participant id: a number (the default) or a
// string (rooms configured with string_ids). It is sent back in the form
// it came in.
type ID struct {
	s   string
	num bool
}

// ParseID reads a configured id: all digits (fitting 64 bits) is a
// number, anything else a string.
func ParseID(s string) ID {
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return ID{s: s, num: true}
	}
	return ID{s: s}
}

func (id ID) String() string { return id.s }

// IsZero reports whether the id is empty.
func (id ID) IsZero() bool { return id.s == "" }

// MarshalJSON writes a number or a string.
func (id ID) MarshalJSON() ([]byte, error) {
	if id.num {
		return []byte(id.s), nil
	}
	return json.Marshal(id.s)
}

// UnmarshalJSON reads a number or a string.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = ID{s: s}
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	if _, err := strconv.ParseUint(n.String(), 10, 64); err != nil {
		return fmt.Errorf("janus: id %s is not an unsigned integer", n)
	}
	*id = ID{s: n.String(), num: true}
	return nil
}

// Stream is one stream of a publisher (Janus 1.x multistream).
type Stream struct {
	Type     string `json:"type"` // audio, video, data
	MID      string `json:"mid"`
	Codec    string `json:"codec"`
	Disabled bool   `json:"disabled"`
}

// Publisher is a participant publishing media in a room.
type Publisher struct {
	ID      ID       `json:"id"`
	Display string   `json:"display"`
	Streams []Stream `json:"streams"`
}

// RoomInfo is an entry of the VideoRoom list.
type RoomInfo struct {
	Room            ID     `json:"room"`
	Description     string `json:"description"`
	NumParticipants int    `json:"num_participants"`
	AudioCodec      string `json:"audiocodec"`
	VideoCodec      string `json:"videocodec"`
}

// Event is the VideoRoom plugin's data of a response or event.
type Event struct {
	VideoRoom   string          `json:"videoroom"`
	Room        ID              `json:"room"`
	Description string          `json:"description"`
	ID          ID              `json:"id"`
	PrivateID   uint64          `json:"private_id"`
	Publishers  []Publisher     `json:"publishers"`
	Leaving     json.RawMessage `json:"leaving"`
	Unpublished json.RawMessage `json:"unpublished"`
	Started     string          `json:"started"`
	Exists      bool            `json:"exists"`
	List        []RoomInfo      `json:"list"`
	ErrorCode   int             `json:"error_code"`
	Error       string          `json:"error"`
}

// ParseEvent decodes the VideoRoom data of a message.
func ParseEvent(data json.RawMessage) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: videoroom data: %v", ErrBadResponse, err)
	}
	return e, nil
}

// Gone returns the publisher that left or stopped publishing, if the event
// says so ("leaving" or "unpublished" with an id, not "ok").
func (e Event) Gone() (ID, bool) {
	for _, raw := range []json.RawMessage{e.Leaving, e.Unpublished} {
		if len(raw) == 0 {
			continue
		}
		var id ID
		if err := json.Unmarshal(raw, &id); err != nil || !id.num && id.s == "ok" {
			continue
		}
		return id, true
	}
	return ID{}, false
}

// RoomMeta is what a room's description says for policy: labels, and a
// department.
type RoomMeta struct {
	Department string
	Labels     map[string]string
}

// Limits of labels read from a description: the recorder's session label
// limits, with room for the adapter's source and janus_room labels.
const (
	maxLabels        = 30
	maxLabelKeyLen   = 64
	maxLabelValueLen = 256
)

// ParseDescription reads key=value tokens from a room description (words
// separated by spaces, commas or semicolons; other words are ignored):
// "department=X" sets the department, every other valid pair becomes a
// label. Keys are ids of at most 64 characters, values at most 256
// printable characters; invalid pairs are skipped, at most 30 labels are
// kept (the first ones).
func ParseDescription(desc string) RoomMeta {
	m := RoomMeta{Labels: map[string]string{}}
	words := strings.FieldsFunc(desc, func(r rune) bool { return unicode.IsSpace(r) || r == ',' || r == ';' })
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || v == "" || !meta.ValidID(k) || len(k) > maxLabelKeyLen || len(v) > maxLabelValueLen ||
			strings.ContainsFunc(v, unicode.IsControl) {
			continue
		}
		if k == "department" {
			if meta.ValidID(v) {
				m.Department = v
			}
			continue
		}
		if _, dup := m.Labels[k]; dup || len(m.Labels) >= maxLabels {
			continue
		}
		m.Labels[k] = v
	}
	return m
}
