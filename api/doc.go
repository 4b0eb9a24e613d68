// Package api is Custodian's HTTP surface: the router every route goes
// through (authentication, the role check, body limits, problem+json
// errors, CORS), and the handlers of the /v1 API.
//
// In the data flow it is both the entry of media (WHIP routes registered
// by the recorder) and the exit of everything stored: recordings are
// decrypted on the fly for playback, transcripts rendered, searches run,
// holds and policies changed, exports built. Each such access is checked by
// auth.Authorize and written to the audit chain (api/audit) before it is
// answered.
package api
