package s3_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/s3"
	"github.com/custodian/custodian/storage/s3/s3test"
)

func lockedStore(t testing.TB, srv *s3test.Server, mode string) *s3.Store {
	t.Helper()
	cfg := srv.Config(s3test.LockedBucket)
	cfg.ObjectLock = mode
	cfg.Prefix = strings.ReplaceAll(t.Name(), "/", "_")
	return srv.NewStore(t, cfg)
}

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

func retention(t testing.TB, st *s3.Store, key string) (types.ObjectLockRetentionMode, time.Time) {
	t.Helper()
	out, err := st.Client().GetObjectRetention(context.Background(), &awss3.GetObjectRetentionInput{
		Bucket: aws.String(s3test.LockedBucket), Key: aws.String(prefixed(t, key)),
	})
	if err != nil {
		t.Fatalf("GetObjectRetention(%s): %v", key, err)
	}
	return out.Retention.Mode, aws.ToTime(out.Retention.RetainUntilDate)
}

func legalHold(t testing.TB, st *s3.Store, key string) types.ObjectLockLegalHoldStatus {
	t.Helper()
	out, err := st.Client().GetObjectLegalHold(context.Background(), &awss3.GetObjectLegalHoldInput{
		Bucket: aws.String(s3test.LockedBucket), Key: aws.String(prefixed(t, key)),
	})
	if err != nil {
		t.Fatalf("GetObjectLegalHold(%s): %v", key, err)
	}
	return out.LegalHold.Status
}

func prefixed(t testing.TB, key string) string {
	return strings.ReplaceAll(t.Name(), "/", "_") + "/" + key
}

func versionCount(t testing.TB, st *s3.Store, key string) int {
	t.Helper()
	out, err := st.Client().ListObjectVersions(context.Background(), &awss3.ListObjectVersionsInput{
		Bucket: aws.String(s3test.LockedBucket), Prefix: aws.String(prefixed(t, key)),
	})
	if err != nil {
		t.Fatalf("ListObjectVersions: %v", err)
	}
	return len(out.Versions) + len(out.DeleteMarkers)
}

// TestObjectLockVersitygw runs against the real server: versitygw v1.8.0
// supports Object Lock on its posix back end (bucket created with Object
// Lock enabled; versioning on through --versioning-dir).
func TestObjectLockVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()

	for _, mode := range []string{s3.ObjectLockGovernance, s3.ObjectLockCompliance} {
		t.Run("retention "+mode, func(t *testing.T) {
			st := lockedStore(t, srv, mode)
			if err := st.Ping(ctx); err != nil {
				t.Fatalf("Ping on a locked bucket: %v", err)
			}
			until := time.Now().Add(time.Hour).Truncate(time.Second)
			if err := st.Put(ctx, "part0", []byte("sealed part"), storage.PutOptions{RetainUntil: until}); err != nil {
				t.Fatalf("Put with retention: %v", err)
			}
			gotMode, gotUntil := retention(t, st, "part0")
			if !strings.EqualFold(string(gotMode), mode) {
				t.Errorf("retention mode = %q, want %q", gotMode, mode)
			}
			if !gotUntil.Equal(until) {
				t.Errorf("retain-until = %v, want %v", gotUntil, until)
			}
			// Deleting a locked object is refused and the object survives.
			if err := st.Delete(ctx, "part0"); err == nil {
				t.Fatal("Delete of an object under retention succeeded")
			}
			if got, err := st.Get(ctx, "part0"); err != nil || string(got) != "sealed part" {
				t.Fatalf("Get after refused Delete = %q, %v", got, err)
			}
			// Overwriting makes a new version; the locked one stays.
			if err := st.Put(ctx, "part0", []byte("second"), storage.PutOptions{RetainUntil: until}); err != nil {
				t.Fatalf("overwrite: %v", err)
			}
			if got, err := st.Get(ctx, "part0"); err != nil || string(got) != "second" {
				t.Fatalf("Get after overwrite = %q, %v", got, err)
			}
			if n := versionCount(t, st, "part0"); n != 2 {
				t.Errorf("versions after overwrite = %d, want 2", n)
			}
		})
	}

	t.Run("retention expires", func(t *testing.T) {
		st := lockedStore(t, srv, s3.ObjectLockCompliance)
		until := time.Now().Add(2 * time.Second)
		if err := st.Put(ctx, "short", []byte("x"), storage.PutOptions{RetainUntil: until}); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "short"); err == nil {
			t.Fatal("Delete before retain-until succeeded")
		}
		checkFor(t, 10*time.Second, 250*time.Millisecond, func() error { return st.Delete(ctx, "short") })
		if _, err := st.Get(ctx, "short"); !storage.IsNotFound(err) {
			t.Fatalf("Get after Delete = %v, want IsNotFound", err)
		}
		if n := versionCount(t, st, "short"); n != 0 {
			t.Errorf("%d versions left after Delete, want 0 (Delete must remove every version)", n)
		}
	})

	t.Run("legal hold", func(t *testing.T) {
		st := lockedStore(t, srv, s3.ObjectLockGovernance)
		if err := st.Put(ctx, "held", []byte("evidence"), storage.PutOptions{LegalHold: true}); err != nil {
			t.Fatalf("Put with legal hold: %v", err)
		}
		if got := legalHold(t, st, "held"); got != types.ObjectLockLegalHoldStatusOn {
			t.Fatalf("legal hold after Put = %q, want ON", got)
		}
		if err := st.Delete(ctx, "held"); err == nil {
			t.Fatal("Delete of a held object succeeded")
		}
		if err := st.SetLegalHold(ctx, "held", false); err != nil {
			t.Fatalf("SetLegalHold(off): %v", err)
		}
		if got := legalHold(t, st, "held"); got != types.ObjectLockLegalHoldStatusOff {
			t.Fatalf("legal hold after release = %q, want OFF", got)
		}
		if err := st.Delete(ctx, "held"); err != nil {
			t.Fatalf("Delete after release: %v", err)
		}
		if _, err := st.Get(ctx, "held"); !storage.IsNotFound(err) {
			t.Fatalf("Get after Delete = %v, want IsNotFound", err)
		}

		// Setting a hold on an existing object.
		if err := st.Put(ctx, "later", []byte("x"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetLegalHold(ctx, "later", true); err != nil {
			t.Fatalf("SetLegalHold(on): %v", err)
		}
		if got := legalHold(t, st, "later"); got != types.ObjectLockLegalHoldStatusOn {
			t.Fatalf("legal hold = %q, want ON", got)
		}
		if err := st.Delete(ctx, "later"); err == nil {
			t.Fatal("Delete of an object held after writing succeeded")
		}
		if err := st.SetLegalHold(ctx, "later", false); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "later"); err != nil {
			t.Fatalf("Delete after release: %v", err)
		}
		if err := st.SetLegalHold(ctx, "missing", true); !storage.IsNotFound(err) {
			t.Errorf("SetLegalHold on a missing object = %v, want IsNotFound", err)
		}
	})

	t.Run("bucket without object lock", func(t *testing.T) {
		cfg := srv.Config(s3test.Bucket)
		cfg.ObjectLock = s3.ObjectLockCompliance
		st := srv.NewStore(t, cfg)
		if err := st.Ping(ctx); !errors.Is(err, s3.ErrBucketNotLocked) {
			t.Fatalf("Ping = %v, want ErrBucketNotLocked", err)
		}
	})

	t.Run("object lock not configured", func(t *testing.T) {
		st := srv.NewStore(t, srv.Config(s3test.LockedBucket))
		if err := st.SetLegalHold(ctx, "x", true); !errors.Is(err, s3.ErrObjectLockDisabled) {
			t.Fatalf("SetLegalHold = %v, want ErrObjectLockDisabled", err)
		}
		// RetainUntil is ignored: the object can be deleted at once.
		if err := st.Put(ctx, "free", []byte("x"), storage.PutOptions{RetainUntil: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "free"); err != nil {
			t.Fatalf("Delete of an object written without Object Lock: %v", err)
		}
	})
}

// TestObjectLockHeaders checks the exact request parameters on the wire with
// an httptest server capturing requests (in addition to the real-server test
// above): PutObject carries mode, retain-until (ISO 8601) and legal hold, and
// an integrity checksum, as AWS requires for Object Lock puts.
func TestObjectLockHeaders(t *testing.T) {
	var mu sync.Mutex
	var reqs []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.Clone(context.Background()))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	st, err := s3.New(context.Background(), s3.Config{
		Bucket: "b", Endpoint: srv.URL, Region: "eu-west-1", ForcePathStyle: true, ObjectLock: "compliance",
	}, s3.WithCredentials(credentials.NewStaticCredentialsProvider("AK", "SK", "")))
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2032, 5, 17, 10, 30, 0, 0, time.UTC)
	if err := st.Put(context.Background(), "k", []byte("data"), storage.PutOptions{RetainUntil: until, LegalHold: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetLegalHold(context.Background(), "k", false); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	put := reqs[0]
	want := map[string]string{
		"X-Amz-Object-Lock-Mode":              "COMPLIANCE",
		"X-Amz-Object-Lock-Retain-Until-Date": "2032-05-17T10:30:00Z",
		"X-Amz-Object-Lock-Legal-Hold":        "ON",
	}
	for h, v := range want {
		if got := put.Header.Get(h); got != v {
			t.Errorf("PutObject %s = %q, want %q", h, got, v)
		}
	}
	if put.Method != http.MethodPut || put.URL.Path != "/b/k" {
		t.Errorf("PutObject request %s %s", put.Method, put.URL.Path)
	}
	if !hasChecksum(put.Header) {
		t.Errorf("PutObject has no Content-MD5 or x-amz-checksum-* header: %v", put.Header)
	}
	if !strings.Contains(put.Header.Get("Authorization"), "/eu-west-1/s3/aws4_request") {
		t.Errorf("PutObject not SigV4-signed for s3 in eu-west-1: %q", put.Header.Get("Authorization"))
	}
	hold := reqs[1]
	if _, ok := hold.URL.Query()["legal-hold"]; !ok || hold.Method != http.MethodPut {
		t.Errorf("SetLegalHold sent %s %s, want PUT ?legal-hold", hold.Method, hold.URL)
	}
	if !hasChecksum(hold.Header) {
		t.Errorf("PutObjectLegalHold has no checksum header: %v", hold.Header)
	}
}

func hasChecksum(h http.Header) bool {
	if h.Get("Content-Md5") != "" {
		return true
	}
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") {
			return true
		}
	}
	return strings.Contains(h.Get("X-Amz-Trailer"), "x-amz-checksum-")
}
