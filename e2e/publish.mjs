// publish.mjs: headless Chromium publishers for Custodian's WHIP endpoint.
//
// Usage: node publish.mjs '<json>' where json is
//   {"url": "http://127.0.0.1:8080", "token": "...", "session": "s1", "seconds": 8,
//    "chromium": "/usr/bin/chromium",
//    "participants": [{"id": "agent", "audio": "/abs/call01.wav", "video": false, "name": "Agent"}, ...]}
//
// Every participant gets its own Chromium process (the fake microphone plays
// one WAV file per process) with a fresh profile. Each page is opened on the
// gateway's own origin (/healthz; 127.0.0.1 is a secure context), so WHIP
// needs no CORS. All participants publish at once, send for `seconds`, then
// DELETE their WHIP resource. Prints one JSON object on stdout:
//   {"participants": [{"id", "location", "postedAt", "connectedAt", "deleteAt", "setupMs", "offerMs", "stats"}]}
// Times are milliseconds since the epoch (Date.now() in the page).
import { logger, run } from './lib.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
if (!cfg.url || !cfg.token || !cfg.session || !Array.isArray(cfg.participants)) {
  console.error('usage: node publish.mjs \'{"url","token","session","seconds","participants":[...]}\'');
  process.exit(2);
}
const log = logger('publish');

// In the page, first phase: capture and offer with candidates gathered.
async function pagePrepare(a) {
  const t0 = Date.now();
  const { pc, stream } = await window.__rtc.offer(a.video);
  window.__whip = { pc, stream };
  return { offerMs: Date.now() - t0 };
}

// In the page, second phase: WHIP POST, answer, wait until connected.
async function pagePublish(a) {
  const { pc } = window.__whip;
  const q = new URLSearchParams({ name: a.name || a.id });
  const posted = Date.now();
  const resp = await fetch(`/whip/${encodeURIComponent(a.session)}/${encodeURIComponent(a.id)}?${q}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${a.token}` },
    body: pc.localDescription.sdp,
  });
  const body = await resp.text();
  if (resp.status !== 201) throw new Error(`POST /whip: ${resp.status} ${body}`);
  const location = resp.headers.get('Location');
  const connected = window.__rtc.connected(pc);
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  const connectedAt = await connected;
  window.__whip.location = location;
  return { location, connectedAt, postedAt: posted, setupMs: connectedAt - posted };
}

// In the page: outbound RTP counters, then DELETE and close.
async function pageStop(token) {
  const { pc, location, stream } = window.__whip;
  const stats = await window.__rtc.outboundStats(pc);
  const deleteAt = Date.now();
  const resp = await fetch(location, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
  pc.close();
  stream.getTracks().forEach((t) => t.stop());
  return { deleteAt, deleteStatus: resp.status, stats };
}

await run({ chromium: cfg.chromium, participants: cfg.participants, url: `${cfg.url}/healthz`, log }, async (launched) => {
  const prepared = await Promise.all(launched.map(({ p, page }) => page.evaluate(pagePrepare, { ...p })));
  // All offers are ready: publish at once.
  const published = await Promise.all(launched.map(({ p, page }) =>
    page.evaluate(pagePublish, { ...p, session: cfg.session, token: cfg.token })));
  const started = published.map((x, i) => ({ ...x, ...prepared[i] }));
  log('publishing', JSON.stringify(started));
  await new Promise((r) => setTimeout(r, (cfg.seconds || 8) * 1000));
  const stopped = await Promise.all(launched.map(({ page }) => page.evaluate(pageStop, cfg.token)));
  const out = launched.map(({ p }, i) => ({ id: p.id, ...started[i], ...stopped[i] }));
  return { participants: out };
});
