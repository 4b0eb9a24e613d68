// Sign-in: a bearer credential kept in sessionStorage (this tab only,
// gone when it closes), either pasted (an opaque cst_ token) or obtained
// from the OIDC issuer with the authorization code flow and PKCE, run
// entirely in the browser (RFC 7636, OAuth 2.0 for Browser-Based Apps).

const TOKEN = 'custodian.token';
const PENDING = 'custodian.oidc';

function meta(name) {
  const el = document.querySelector(`meta[name="custodian-oidc-${name}"]`);
  return el ? el.content : '';
}

// oidc is the issuer configuration the server rendered into the page.
export const oidc = {
  issuer: meta('issuer'),
  clientID: meta('client-id'),
  authorizationEndpoint: meta('authorization-endpoint'),
  tokenEndpoint: meta('token-endpoint'),
};
export const oidcEnabled = () => !!(oidc.issuer && oidc.clientID);

export function token() { return sessionStorage.getItem(TOKEN) || ''; }
export function setToken(t) { sessionStorage.setItem(TOKEN, t); }
export function clearToken() { sessionStorage.removeItem(TOKEN); }

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
function random(n = 32) { return b64url(crypto.getRandomValues(new Uint8Array(n))); }

export function decodeJWT(jwt) {
  const part = String(jwt).split('.')[1];
  if (!part) return null;
  try {
    const bin = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

async function endpoints() {
  if (oidc.authorizationEndpoint && oidc.tokenEndpoint) return oidc;
  const url = oidc.issuer.replace(/\/$/, '') + '/.well-known/openid-configuration';
  const resp = await fetch(url, { headers: { Accept: 'application/json' } });
  if (!resp.ok) throw new Error(`the identity provider's discovery document answered ${resp.status}`);
  const doc = await resp.json();
  if (doc.issuer !== oidc.issuer) throw new Error('the identity provider names another issuer');
  oidc.authorizationEndpoint = doc.authorization_endpoint;
  oidc.tokenEndpoint = doc.token_endpoint;
  return oidc;
}

const redirectURI = () => `${location.origin}/callback`;

// startOIDC sends the browser to the issuer's authorization endpoint.
export async function startOIDC(returnTo) {
  const ep = await endpoints();
  const verifier = random(48);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const state = random(), nonce = random();
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce, returnTo: returnTo || '' }));
  const u = new URL(ep.authorizationEndpoint);
  u.search = new URLSearchParams({
    response_type: 'code',
    client_id: oidc.clientID,
    redirect_uri: redirectURI(),
    scope: 'openid profile email',
    code_challenge: b64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
    state,
    nonce,
  }).toString();
  location.assign(u.toString());
}

// finishOIDC completes the flow on /callback: checks state, exchanges the
// code at the token endpoint with the PKCE verifier, checks the ID
// token's issuer, audience and nonce, and keeps the credential. Returns
// the path to continue at. The gateway verifies the signature of every
// JWT it is given; the checks here keep a wrong token from being used.
export async function finishOIDC() {
  const q = new URLSearchParams(location.search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  if (q.get('error')) throw new Error(`the identity provider refused the sign-in: ${q.get('error_description') || q.get('error')}`);
  if (!pending || !q.get('code')) throw new Error('no sign-in is in progress in this tab; start again');
  if (q.get('state') !== pending.state) throw new Error('the sign-in answer does not belong to this tab (state mismatch); start again');
  const ep = await endpoints();
  const resp = await fetch(ep.tokenEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: q.get('code'),
      redirect_uri: redirectURI(),
      client_id: oidc.clientID,
      code_verifier: pending.verifier,
    }),
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(`the token endpoint refused the code: ${body.error_description || body.error || resp.status}`);
  const claims = decodeJWT(body.id_token);
  if (!claims) throw new Error('the identity provider sent no ID token');
  const aud = [].concat(claims.aud || []);
  if (claims.iss !== oidc.issuer || !aud.includes(oidc.clientID)) throw new Error('the ID token is for another issuer or client');
  if (claims.nonce !== pending.nonce) throw new Error('the ID token does not belong to this sign-in (nonce mismatch)');
  // The access token when it is a JWT for this client (issuer and
  // audience as the gateway checks them), else the ID token.
  const at = decodeJWT(body.access_token);
  const useAccess = at && at.iss === oidc.issuer && [].concat(at.aud || []).includes(oidc.clientID);
  setToken(useAccess ? body.access_token : body.id_token);
  return pending.returnTo || '/';
}
