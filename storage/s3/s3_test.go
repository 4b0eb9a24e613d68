package s3_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/s3"
	"github.com/custodian/custodian/storage/s3/s3test"
	"github.com/custodian/custodian/storage/storagetest"
)

func TestConformanceVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	storagetest.Run(t, func(t testing.TB) storage.Blob { return srv.Blob(t) })
}

func TestPing(t *testing.T) {
	srv := s3test.Start(t)
	if err := srv.Blob(t).Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestOutageAndRestart(t *testing.T) {
	srv := s3test.Start(t)
	cfg := srv.Config(s3test.Bucket)
	cfg.Prefix = "outage"
	st := srv.NewStore(t, cfg, s3.WithMaxAttempts(1))
	ctx := context.Background()
	if err := st.Put(ctx, "before", []byte("kept"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	if srv.Running() {
		t.Fatal("Running after Stop")
	}
	err := st.Put(ctx, "during", []byte("x"), storage.PutOptions{})
	if err == nil {
		t.Fatal("Put succeeded with the server stopped")
	}
	if !s3.IsRetryable(err) || storage.IsNotFound(err) {
		t.Fatalf("Put during outage: %v; IsRetryable = %v, want true and not IsNotFound", err, s3.IsRetryable(err))
	}
	if _, err := st.Get(ctx, "before"); !s3.IsRetryable(err) || storage.IsNotFound(err) {
		t.Fatalf("Get during outage: %v; want retryable, not IsNotFound", err)
	}
	if err := st.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with the server stopped")
	}
	srv.Restart(t)
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	if err := st.Put(ctx, "during", []byte("x"), storage.PutOptions{}); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	if got, err := st.Get(ctx, "before"); err != nil || string(got) != "kept" {
		t.Fatalf("object written before the outage = %q, %v", got, err)
	}
}

func TestErrorClassification(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()

	st := srv.Blob(t)
	_, err := st.Get(ctx, "missing")
	if !storage.IsNotFound(err) || s3.IsRetryable(err) {
		t.Errorf("missing object: %v; want IsNotFound and not retryable", err)
	}
	_, err = st.Get(ctx, "../x")
	if !errors.Is(err, s3.ErrInvalidKey) || s3.IsRetryable(err) {
		t.Errorf("invalid key: %v; want ErrInvalidKey, not retryable", err)
	}

	noBucket := srv.NewStore(t, srv.Config("no-such-bucket"))
	_, err = noBucket.Get(ctx, "x")
	if err == nil || storage.IsNotFound(err) || s3.IsRetryable(err) {
		t.Errorf("missing bucket: %v; want an error that is neither IsNotFound nor retryable", err)
	}
	if err := noBucket.Ping(ctx); err == nil {
		t.Error("Ping on a missing bucket succeeded")
	}

	bad, err := s3.New(ctx, srv.Config(s3test.Bucket),
		s3.WithCredentials(credentials.NewStaticCredentialsProvider(srv.AccessKey, "wrong-secret", "")))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Put(ctx, "x", []byte("x"), storage.PutOptions{})
	if err == nil || s3.IsRetryable(err) {
		t.Errorf("wrong secret: %v; want a non-retryable error", err)
	}
	if err := bad.Ping(ctx); err == nil {
		t.Error("Ping with a wrong secret succeeded")
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := st.Put(cctx, "x", nil, storage.PutOptions{}); err == nil || s3.IsRetryable(err) {
		t.Errorf("cancelled context: %v; want a non-retryable error", err)
	}
}

func TestRetryableStatus(t *testing.T) {
	tests := []struct {
		status    int
		code      string
		retryable bool
	}{
		{http.StatusInternalServerError, "InternalError", true},
		{http.StatusServiceUnavailable, "SlowDown", true},
		{http.StatusBadGateway, "", true},
		{http.StatusForbidden, "AccessDenied", false},
		{http.StatusBadRequest, "InvalidRequest", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status, tt.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>test</Message></Error>`, tt.code)
			}))
			t.Cleanup(srv.Close)
			st, err := s3.New(context.Background(), s3.Config{Bucket: "b", Endpoint: srv.URL, Region: "us-east-1", ForcePathStyle: true},
				s3.WithCredentials(credentials.NewStaticCredentialsProvider("AK", "SK", "")), s3.WithMaxAttempts(1))
			if err != nil {
				t.Fatal(err)
			}
			err = st.Put(context.Background(), "k", []byte("x"), storage.PutOptions{})
			if err == nil {
				t.Fatal("Put succeeded")
			}
			if got := s3.IsRetryable(err); got != tt.retryable {
				t.Fatalf("IsRetryable(%v) = %v, want %v", err, got, tt.retryable)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	bad := []s3.Config{
		{},
		{Bucket: "b", ObjectLock: "forever"},
		{Bucket: "b", Prefix: "../up"},
		{Bucket: "b", Prefix: "/abs"},
	}
	for _, cfg := range bad {
		if _, err := s3.New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func BenchmarkPut8KiBVersitygw(b *testing.B) {
	srv := s3test.Start(b)
	st := srv.Blob(b)
	data := make([]byte, 8<<10)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		i++
		if err := st.Put(ctx, fmt.Sprintf("bench/part%06d", i), data, storage.PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetRange64KiBVersitygw(b *testing.B) {
	srv := s3test.Start(b)
	st := srv.Blob(b)
	ctx := context.Background()
	if err := st.Put(ctx, "big", make([]byte, 4<<20), storage.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(64 << 10)
	for b.Loop() {
		if _, err := st.GetRange(ctx, "big", 1<<20, 64<<10); err != nil {
			b.Fatal(err)
		}
	}
}
