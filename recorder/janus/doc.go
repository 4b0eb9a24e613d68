// Package janus is Custodian's adapter for the Janus WebRTC Server's
// VideoRoom plugin (Janus 1.1, HTTP/REST API): the recorder joins
// governed rooms the way a compliance-recording bot joins a meeting.
//
// Place in the data flow: it is join mode's signalling towards Janus, next
// to WHIP ingest and WHEP pulls. For every governed room it holds the
// session janus-{room} open (recorder.Hold), joins the room as a
// participant that never publishes, so that Janus tells it when publishers
// come and go (long-poll GET on the Janus session), and subscribes to each
// publisher on its own handle: Janus makes the offer, the recorder answers
// (recorder.Hold.Answer) and records the publisher as a participant, named
// by its Janus display name, with the same pipeline, policy, consent,
// encryption and events as a WHIP publisher.
//
//	Janus VideoRoom ──events (long poll)──▶ Adapter ──Hold/Answer──▶ recorder
//	     ▲  attach, join, subscribe, start                 │
//	     └──────────────── SDP answer ◀────────────────────┘
//	publisher media ─▶ Janus ─▶ (subscriber PeerConnection) ─▶ pipeline
//
// Keepalives keep the Janus session from timing out; when Janus restarts
// or the session is lost anyway, the adapter ends the live recordings and
// attaches again. Rooms whose policy says record: off are not joined; a
// Janus that stays unreachable, or a governed room that does not exist,
// fails the room's session closed where the policy requires recording.
//
// client.go is a small Janus HTTP API client (sessions, handles,
// transactions, long polls); adapter.go the VideoRoom logic.
package janus
