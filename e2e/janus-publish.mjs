// janus-publish.mjs: headless Chromium publishers in a Janus VideoRoom room,
// through the Janus HTTP API (no Janus JS library: the few calls are below).
//
// Usage: node janus-publish.mjs '<json>' where json is
//   {"janus": "http://127.0.0.1:8088/janus", "room": 1234, "chromium": "/usr/bin/chromium",
//    "participants": [{"id": "alice", "display": "Alice", "audio": "/abs/call01.wav", "video": true,
//                      "joinAfterMs": 0, "leaveAfterMs": 10000}, ...]}
//
// Every participant gets its own Chromium process (the fake microphone plays
// one WAV file per process). Each page is opened on Janus's own origin
// (/janus/info; 127.0.0.1 is a secure context), so the API needs no CORS.
// Times joinAfterMs and leaveAfterMs count from when every browser is ready.
// A participant creates a Janus session, attaches to janus.plugin.videoroom,
// joins as a publisher, publishes (offer with every candidate, answer from
// Janus), waits until connected, and at leaveAfterMs sends "leave", closes
// and destroys its session. Prints one JSON object on stdout:
//   {"participants": [{"id", "feed", "connectedAt", "leftAt", "setupMs", "stats"}]}
// Times are milliseconds since the epoch (Date.now() in the page).
import { logger, run } from './lib.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
if (!cfg.janus || cfg.room === undefined || !Array.isArray(cfg.participants)) {
  console.error('usage: node janus-publish.mjs \'{"janus","room","participants":[...]}\'');
  process.exit(2);
}
const log = logger('janus-publish');

// In the page: a minimal Janus HTTP API client and the publisher.
async function pageJoin(a) {
  const base = a.janus.replace(/\/$/, '');
  const tx = () => Math.random().toString(36).slice(2) + Date.now().toString(36);
  const post = async (path, body) => {
    const resp = await fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ transaction: tx(), ...body }) });
    const msg = await resp.json();
    if (msg.janus === 'error') throw new Error(`janus ${body.janus}: ${msg.error.code} ${msg.error.reason}`);
    return msg;
  };
  const created = await post('', { janus: 'create' });
  const session = created.data.id;
  const waiting = new Map(); // transaction -> resolve
  const state = { session, stopped: false };
  window.__janus = state;
  (async () => { // long poll: events to the waiting calls
    while (!state.stopped) {
      try {
        const resp = await fetch(`${base}/${session}?maxev=10&rid=${Date.now()}`);
        let evs = await resp.json();
        if (!Array.isArray(evs)) evs = [evs];
        for (const ev of evs) {
          const w = ev.transaction && waiting.get(ev.transaction);
          if (w && ev.janus !== 'ack') { waiting.delete(ev.transaction); w(ev); }
        }
      } catch (e) {
        if (!state.stopped) await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();
  state.keepalive = setInterval(() => post(`/${session}`, { janus: 'keepalive' }).catch(() => {}), 10000);
  const attached = await post(`/${session}`, { janus: 'attach', plugin: 'janus.plugin.videoroom' });
  const handle = attached.data.id;
  const call = async (body, jsep) => {
    const t = tx();
    const ev = new Promise((resolve, reject) => {
      waiting.set(t, resolve);
      setTimeout(() => reject(new Error(`no answer to ${body.request}`)), 15000);
    });
    const msg = { janus: 'message', transaction: t, body };
    if (jsep) msg.jsep = jsep;
    const resp = await fetch(`${base}/${session}/${handle}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(msg) });
    const ack = await resp.json();
    if (ack.janus === 'error') throw new Error(`janus ${body.request}: ${ack.error.code} ${ack.error.reason}`);
    const got = await ev;
    const data = got.plugindata && got.plugindata.data;
    if (data && data.error_code) throw new Error(`videoroom ${body.request}: ${data.error_code} ${data.error}`);
    return got;
  };
  state.call = call;
  state.post = post;
  const joined = await call({ request: 'join', ptype: 'publisher', room: a.room, display: a.display });
  const feed = joined.plugindata.data.id;

  const { pc, stream } = await window.__rtc.offer(a.video);
  const posted = Date.now();
  const connected = window.__rtc.connected(pc);
  const published = await call({ request: 'publish', display: a.display }, { type: 'offer', sdp: pc.localDescription.sdp });
  if (!published.jsep) throw new Error('publish: no answer');
  await pc.setRemoteDescription(published.jsep);
  const connectedAt = await connected;
  Object.assign(state, { pc, stream });
  const cands = pc.localDescription.sdp.split('\r\n').filter((l) => l.startsWith('a=candidate')).map((l) => l.split(' ')[4]);
  return { feed: String(feed), connectedAt, setupMs: connectedAt - posted, candidates: cands };
}

// In the page: counters, leave, close.
async function pageLeave() {
  const s = window.__janus;
  const stats = await window.__rtc.outboundStats(s.pc);
  const leftAt = Date.now();
  await s.call({ request: 'leave' });
  s.pc.close();
  s.stream.getTracks().forEach((t) => t.stop());
  s.stopped = true;
  clearInterval(s.keepalive);
  await s.post(`/${s.session}`, { janus: 'destroy' }).catch(() => {});
  return { leftAt, stats };
}

const sleepUntil = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
await run({ chromium: cfg.chromium, participants: cfg.participants, url: `${cfg.janus.replace(/\/$/, '')}/info`, log }, async (launched) => {
  const start = Date.now();
  const out = await Promise.all(launched.map(async ({ p, page }) => {
    await sleepUntil(start + (p.joinAfterMs || 0) - Date.now());
    const joined = await page.evaluate(pageJoin, { janus: cfg.janus, room: cfg.room, display: p.display || p.id, video: !!p.video });
    log(p.id, 'publishing', JSON.stringify(joined));
    await sleepUntil(start + (p.leaveAfterMs || 8000) - Date.now());
    const left = await page.evaluate(pageLeave);
    log(p.id, 'left', JSON.stringify(left));
    return { id: p.id, ...joined, ...left };
  }));
  return { participants: out };
});
