// Package console serves the review console: the web application that
// compliance officers, supervisors and auditors use to search transcripts,
// listen to recordings, read merged transcripts, place legal holds, read
// and edit policies, read and verify the audit log, and start exports.
//
// In the data flow it sits at the very end, beside the /v1 API it calls:
// it holds no data of its own. Its HTML, CSS and JavaScript modules are
// embedded in the binary (go:embed; no CDN, no build step), served
// gzip-compressed when the browser accepts it, under a strict
// Content-Security-Policy. Every request the application makes goes to
// the /v1 API with the bearer credential of the signed-in user, so the
// API's role checks and audit log apply unchanged; media elements stream
// through short-lived media tickets (api.MediaTickets).
//
// Routes: GET / and the application's client routes (one path segment,
// see Pages, and /sessions/{id}) answer the application's page; GET
// /assets/{path...} the embedded files. Any other path keeps the router's
// problem+json 404, so /v1, /whip, /healthz, /readyz and /metrics are
// never shadowed.
package console
