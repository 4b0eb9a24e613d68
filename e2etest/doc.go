// Package e2etest holds end-to-end tests of the whole gateway: the built
// `custodian` binary as a subprocess (crash with SIGKILL and recovery at
// the next start, SIGTERM finalizing recordings) and headless Chromium
// publishing real speech over WHIP. It has no non-test code.
//
// Place in the data flow: outside it, as the publishers, operators and
// event consumers of a running gateway. Every test runs inside a network
// namespace whose only interface is loopback (internal/netns); the gateway
// subprocesses and Chromium inherit it.
package e2etest
