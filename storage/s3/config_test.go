package s3_test

import (
	"testing"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/s3"
)

// s3.Config mirrors config.S3 field for field, so wiring is a conversion.
func TestConfigMirrorsConfigS3(t *testing.T) {
	in := config.S3{Bucket: "b", Endpoint: "http://x", Region: "r", Prefix: "p", ForcePathStyle: true, ObjectLock: "compliance"}
	got := s3.Config(in)
	want := s3.Config{Bucket: "b", Endpoint: "http://x", Region: "r", Prefix: "p", ForcePathStyle: true, ObjectLock: "compliance"}
	if got != want {
		t.Fatalf("s3.Config(config.S3) = %+v, want %+v", got, want)
	}
}
