// Calls to the /v1 API with the signed-in user's bearer credential, and
// readable messages for its problem+json answers.
import { token } from './auth.js';

// ApiError is a non-2xx answer; problem is its RFC 9457 body (if any).
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

let onUnauthorized = () => {};
// setUnauthorizedHandler registers what happens on a 401 (sign out).
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// request sends one API request; json (an object) becomes the body.
// Answers the Response; throws ApiError for non-2xx answers.
export async function request(path, { method = 'GET', json, body, headers = {}, signal } = {}) {
  const h = new Headers(headers);
  const t = token();
  if (t) h.set('Authorization', `Bearer ${t}`);
  if (json !== undefined) {
    h.set('Content-Type', 'application/json');
    body = JSON.stringify(json);
  }
  if (!h.has('Accept')) h.set('Accept', 'application/json');
  const resp = await fetch(path, { method, headers: h, body, cache: 'no-store', signal });
  if (resp.ok || resp.status === 304) return resp;
  let problem = null;
  if ((resp.headers.get('Content-Type') || '').includes('json')) problem = await resp.json().catch(() => null);
  const err = new ApiError(resp.status, problem);
  if (resp.status === 401 && path !== '/v1/me') onUnauthorized(err);
  throw err;
}

// get answers the JSON body of a GET.
export async function get(path, params) {
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null) q.set(k, v);
    const s = q.toString();
    if (s) path += (path.includes('?') ? '&' : '?') + s;
  }
  return (await request(path)).json();
}

export async function send(method, path, json) {
  const resp = await request(path, { method, json });
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

// message explains an API error to the user. what names the action
// ("place legal holds"); me is the signed-in principal.
export function message(err, what, me) {
  if (!(err instanceof ApiError)) return `Could not ${what}: ${err.message || err}. Check the connection and try again.`;
  const p = err.problem || {};
  switch (err.status) {
    case 401:
      return 'Your sign-in is no longer valid (expired or revoked). Sign in again.';
    case 403:
      if (/policy-scope/.test(p.type || '')) return `You may not ${what}: ${p.detail || 'outside your tenant'}.`;
      return `Your role${me ? ` (${me.role})` : ''} may not ${what}. Ask a compliance officer or an administrator.`;
    case 404:
      return 'Not found. It does not exist, or it is outside your tenant or department.';
    case 409:
      return p.detail ? `Not possible right now: ${p.detail}.` : 'Not possible in the current state.';
    case 410:
      return 'This was deleted (its key was destroyed) and can no longer be read.';
    case 412:
      return p.detail || 'Someone else changed it meanwhile. Reload and try again.';
    case 503:
      return `The service is temporarily unavailable${p.detail ? `: ${p.detail}` : ''}. Try again shortly.`;
    default:
      return p.detail || `Could not ${what} (HTTP ${err.status}).`;
  }
}

// fieldErrors maps a 400 problem's errors to {field: reason}.
export function fieldErrors(err) {
  const out = {};
  const list = (err && err.problem && err.problem.errors) || [];
  for (const e of list) if (e.field && !out[e.field]) out[e.field] = e.reason;
  return out;
}
