package awskms_test

import (
	"testing"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/awskms"
)

// awskms.Config mirrors config.AWSKMS field for field, so wiring is a
// conversion.
func TestConfigMirrorsConfigAWSKMS(t *testing.T) {
	in := config.AWSKMS{KeyID: "k", TenantKeyIDs: map[string]string{"a": "ka"}, Region: "r", Endpoint: "e"}
	got := awskms.Config(in)
	if got.KeyID != "k" || got.TenantKeyIDs["a"] != "ka" || got.Region != "r" || got.Endpoint != "e" {
		t.Fatalf("awskms.Config(config.AWSKMS) = %+v", got)
	}
}
