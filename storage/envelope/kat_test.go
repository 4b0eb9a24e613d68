package envelope_test

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	agetest "c2sp.org/CCTV/age"
	"filippo.io/age"
	"filippo.io/age/armor"
)

// TestAgeVectors runs the published age test vectors (C2SP CCTV) through
// the age library this package builds on: header parsing, header MAC,
// STREAM payload (chunk boundaries, truncation, final-chunk flag) and the
// native recipients. Each vector must succeed or fail exactly as stated,
// and every byte age released before failing must hash to the vector's
// payload hash.
func TestAgeVectors(t *testing.T) {
	names, err := fs.ReadDir(agetest.Vectors, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 100 {
		t.Fatalf("only %d vectors found", len(names))
	}
	counts := map[string]int{}
	for _, de := range names {
		raw, err := fs.ReadFile(agetest.Vectors, de.Name())
		if err != nil {
			t.Fatal(err)
		}
		v := parseVector(t, de.Name(), raw)
		if v.scrypt {
			// Passphrase (scrypt) recipients are not used by Custodian and
			// are slow; every other vector runs.
			counts["skipped (scrypt)"]++
			continue
		}
		counts[v.expect]++
		t.Run(de.Name(), func(t *testing.T) { v.check(t) })
	}
	t.Logf("vectors by expectation: %v", counts)
}

type ageVector struct {
	expect     string
	payload    string // hex SHA-256, optional
	identities []age.Identity
	armored    bool
	scrypt     bool
	file       []byte
}

func parseVector(t *testing.T, name string, raw []byte) *ageVector {
	t.Helper()
	head, body, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		t.Fatalf("%s: no blank line after the vector header", name)
	}
	v := &ageVector{file: body}
	compressed := false
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		k, val, _ := strings.Cut(sc.Text(), ": ")
		switch k {
		case "expect":
			v.expect = val
		case "payload":
			v.payload = val
		case "identity":
			ids, err := age.ParseIdentities(strings.NewReader(val))
			if err != nil {
				t.Fatalf("%s: identity: %v", name, err)
			}
			v.identities = append(v.identities, ids...)
		case "passphrase":
			id, err := age.NewScryptIdentity(val)
			if err != nil {
				t.Fatalf("%s: passphrase: %v", name, err)
			}
			v.identities = append(v.identities, id)
			v.scrypt = true
		case "armored":
			v.armored = val == "yes"
		case "compressed":
			compressed = val == "zlib"
		}
	}
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: zlib: %v", name, err)
		}
		if v.file, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: zlib: %v", name, err)
		}
	}
	return v
}

func (v *ageVector) check(t *testing.T) {
	var in io.Reader = bytes.NewReader(v.file)
	if v.armored {
		in = armor.NewReader(in)
	}
	h := sha256.New()
	var err error
	r, err := age.Decrypt(in, v.identities...)
	if err == nil {
		_, err = io.Copy(h, r)
	}
	released := hex.EncodeToString(h.Sum(nil))

	var armorErr *armor.Error
	var noMatch *age.NoIdentityMatchError
	switch v.expect {
	case "success":
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		if released != v.payload {
			t.Fatalf("payload hash %s, want %s", released, v.payload)
		}
		return
	case "no match":
		if !errors.As(err, &noMatch) {
			t.Fatalf("want no match, got %v", err)
		}
	case "armor failure":
		if !errors.As(err, &armorErr) {
			t.Fatalf("want armor failure, got %v", err)
		}
	case "HMAC failure", "header failure", "payload failure":
		if err == nil {
			t.Fatalf("want %s, got success", v.expect)
		}
		if errors.As(err, &noMatch) {
			t.Fatalf("want %s, got no match: %v", v.expect, err)
		}
	default:
		t.Fatalf("unknown expectation %q", v.expect)
	}
	if v.payload != "" && released != v.payload {
		t.Fatalf("%s: released plaintext hash %s, want %s", v.expect, released, v.payload)
	}
}
