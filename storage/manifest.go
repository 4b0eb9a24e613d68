package storage

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/meta"
)

// ManifestVersion is the version of the manifest JSON this package writes.
const ManifestVersion = 1

// Manifest proves a recording's order and completeness: the ordered list
// of its parts with the SHA-256 of each sealed part object and their sizes.
// It is stored as its own sealed object (binding "manifest"), so it can
// only be produced by a holder of the recording's data key.
type Manifest struct {
	Version     int    `json:"version"`
	Tenant      string `json:"tenant"`
	RecordingID string `json:"recording_id"`
	// Complete is true when the writer closed the recording normally;
	// false for failed recordings and for manifests built by Recover.
	Complete bool       `json:"complete"`
	Parts    []PartInfo `json:"parts"`
	// PlainSize is the length of the recording (sum of part plain sizes).
	PlainSize int64 `json:"plain_size"`
	// CipherSize is the sum of the sealed part sizes.
	CipherSize int64 `json:"cipher_size"`
	// Discarded lists part numbers found by Recover after the first
	// missing or unreadable part; they are left in place but are not part
	// of the recording.
	Discarded []int     `json:"discarded,omitempty"`
	CreatedAt time.Time `json:"created_at"`

	// SHA256 is the hex SHA-256 of the sealed manifest object and
	// ObjectSize its length. They are not part of the sealed JSON.
	SHA256     string `json:"-"`
	ObjectSize int64  `json:"-"`
}

// PartInfo describes one part in a Manifest.
type PartInfo struct {
	N            int    `json:"n"`
	CipherSHA256 string `json:"cipher_sha256"` // hex SHA-256 of the sealed part object
	CipherSize   int64  `json:"cipher_size"`
	PlainSize    int64  `json:"plain_size"`
	PlainOffset  int64  `json:"plain_offset"` // offset of its first byte in the recording
}

// Apply copies the manifest's totals into a recording row: Parts, Size,
// CipherSize (parts and manifest) and ManifestSHA256. Once ManifestSHA256
// is stored, Open refuses any other manifest for the recording.
func (m Manifest) Apply(r *meta.Recording) {
	r.Parts = len(m.Parts)
	r.Size = m.PlainSize
	r.CipherSize = m.CipherSize + m.ObjectSize
	r.ManifestSHA256 = m.SHA256
}

// validate checks the manifest's internal consistency for the recording.
func (m *Manifest) validate(tenant, recordingID string) error {
	if m.Version != ManifestVersion {
		return fmt.Errorf("manifest version %d, want %d", m.Version, ManifestVersion)
	}
	if m.Tenant != tenant || m.RecordingID != recordingID {
		return fmt.Errorf("manifest is for %s/%s", m.Tenant, m.RecordingID)
	}
	var off, cipher int64
	for i, p := range m.Parts {
		if p.N != i {
			return fmt.Errorf("manifest entry %d is part %d", i, p.N)
		}
		if p.PlainOffset != off || p.PlainSize < 0 {
			return fmt.Errorf("part %d: plain offset %d size %d, want offset %d", i, p.PlainOffset, p.PlainSize, off)
		}
		if want := envelope.SealedSize(partBinding(tenant, recordingID, i), p.PlainSize); p.CipherSize != want {
			return fmt.Errorf("part %d: cipher size %d, want %d for %d plain bytes", i, p.CipherSize, want, p.PlainSize)
		}
		if h, err := hex.DecodeString(p.CipherSHA256); err != nil || len(h) != 32 {
			return fmt.Errorf("part %d: bad hash %q", i, p.CipherSHA256)
		}
		off += p.PlainSize
		cipher += p.CipherSize
	}
	if m.PlainSize != off || m.CipherSize != cipher {
		return fmt.Errorf("manifest totals %d/%d, parts add up to %d/%d", m.PlainSize, m.CipherSize, off, cipher)
	}
	for _, n := range m.Discarded {
		if n < len(m.Parts) {
			return fmt.Errorf("discarded part %d is within the recording", n)
		}
	}
	return nil
}

// openManifest authenticates and parses a sealed manifest.
func openManifest(key []byte, tenant, recordingID string, sealed []byte) (Manifest, error) {
	pt, err := envelope.Open(key, manifestBinding(tenant, recordingID), sealed)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(pt, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest: %v", ErrIntegrity, err)
	}
	if err := m.validate(tenant, recordingID); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest: %v", ErrIntegrity, err)
	}
	m.SHA256 = sha256Hex(sealed)
	m.ObjectSize = int64(len(sealed))
	return m, nil
}

// sealManifest seals m and fills in SHA256 and ObjectSize.
func sealManifest(key []byte, m *Manifest) ([]byte, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sealed, err := envelope.Seal(key, manifestBinding(m.Tenant, m.RecordingID), data)
	if err != nil {
		return nil, err
	}
	m.SHA256 = sha256Hex(sealed)
	m.ObjectSize = int64(len(sealed))
	return sealed, nil
}
