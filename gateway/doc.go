// Package gateway wires a running Custodian process from its configuration:
// key provider, metadata database, object store and spool, NATS (embedded
// or external) with the event relay, the recorder and its WHIP endpoints,
// transcription workers, the search index, governance workers and the HTTP
// API. cmd/custodian's serve command is a thin wrapper around Run, and
// end-to-end tests start a Gateway in-process.
//
// Start-up order follows the data flow's dependencies (keys, database,
// objects, NATS, relay, recorder, API); shutdown runs in reverse so that
// active recordings are finalized, sealed parts are uploaded and their
// events relayed before the process exits.
package gateway
