// Package netns runs a package's tests inside a network namespace whose only
// interface is loopback.
//
// It sits outside the data flow: it is test infrastructure for every package
// that opens WebRTC peers (recorder/webrtc, recorder/whip, recorder, the
// end-to-end tests). Chromium, pion and libnice gather ICE candidates on every
// interface they find; inside a namespace that holds nothing but lo, no ICE
// traffic can use a non-loopback address, whatever the peers do.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(netns.RunLoopbackOnly(m)) }
//
// Outside such a namespace RunLoopbackOnly re-executes the test binary under
// `unshare --net` (after `ip link set lo up`) with the same arguments and
// environment plus the marker variable CUSTODIAN_NETNS=loopback, and returns
// the child's exit code. Inside, it checks that lo is the only interface and
// runs the tests. It needs CAP_SYS_ADMIN (CI runs as root); without it the
// tests fail with a clear message unless CUSTODIAN_TEST_NETNS=off is set, which
// runs them in the current namespace.
package netns
