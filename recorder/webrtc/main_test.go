package webrtc_test

import (
	"os"
	"testing"

	"github.com/custodian/custodian/internal/netns"
)

func TestMain(m *testing.M) { os.Exit(netns.RunLoopbackOnly(m)) }
