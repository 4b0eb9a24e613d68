// Package events announces Custodian's state changes on NATS JetStream as
// CloudEvents 1.0 JSON.
//
// It is the last step of every data flow: a component changes state in a
// database transaction and calls Emit in that same transaction, which writes
// an outbox row; the Relay publishes committed rows to the stream
// CUSTODIAN_EVENTS (subject custodian.{tenant}.{kind}, Nats-Msg-Id = event
// id) and marks them sent only after JetStream acknowledges, retrying with
// backoff while NATS is down. So no event is lost, and none is announced
// for a change that did not commit.
package events
