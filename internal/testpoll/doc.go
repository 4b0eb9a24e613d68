// Package testpoll is test support: it polls a condition until it holds or a
// timeout passes, failing the test with the condition's last error (the
// checkFor helper of nats-server's tests).
//
// It sits outside the data flow. Only tests and test-support packages
// (gatewaytest, janustest and the like) import it; production code must not
// (TestNotImportedByProduction checks that).
package testpoll
