// Package auth authenticates API and WHIP callers and decides what they
// may do (SPEC section 9).
//
// In the data flow it is the first step of every request, before anything
// is read or stored: the HTTP layer takes the bearer credential from the
// Authorization header → Authenticator.Authenticate turns it into a
// Principal (an opaque "cst_" token looked up by its SHA-256 hash in the
// tokens table, or an OIDC JWT verified against the configured issuer's
// JWKS) → Authorize, the one central check, answers Allow, Forbidden (the
// role lacks the permission: 403) or NotFound (the item is outside the
// caller's tenant, department or the policy's access rule: 404, so ids
// cannot be probed) → list queries filter inside the database with Scope.
//
// Roles and their permissions are a fixed table (see Permissions and
// docs/auth.md): admin (everything in its tenant), compliance (all content
// of its tenant), supervisor (its own department), auditor (the audit log
// only) and ingest (WHIP only). Tokens are only ever stored hashed; the
// plaintext is shown once at creation and never logged.
package auth
