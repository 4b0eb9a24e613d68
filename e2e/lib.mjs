// lib.mjs: what the headless Chromium publishers (publish.mjs,
// janus-publish.mjs) share: a stderr logger, Chromium's flags for fake media
// on loopback, one browser per participant with its own profile, in-page
// WebRTC helpers, and the run-print-clean-up frame of a script.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// logger returns a console.error logger prefixed with name and the
// milliseconds since the script started.
export function logger(name) {
  const t0 = Date.now();
  return (...a) => console.error(`[${name} +${Date.now() - t0} ms]`, ...a);
}

// flags are Chromium's arguments for a fake microphone playing the WAV file
// audio (and a fake camera), peer connections over loopback, and nothing
// else going on.
export function flags(audio) {
  return [
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${audio}`,
    '--allow-loopback-in-peer-connection',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
  ];
}

// In the page: window.__rtc, the WebRTC steps both publishers take.
function installPageHelpers() {
  window.__rtc = {
    // offer captures audio (and video if asked), adds send-only
    // transceivers and sets the offer once candidates are gathered
    // (complete, or 300 ms after the first candidate, or 2 s at most:
    // Chromium keeps looking for TCP and IPv6 candidates that a
    // loopback-only network does not have). No trickle: every candidate is
    // in pc.localDescription.
    async offer(video) {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: video ? { width: 640, height: 360, frameRate: 30 } : false,
      });
      const pc = new RTCPeerConnection();
      for (const t of stream.getTracks()) pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
        pc.addEventListener('icecandidate', (e) => { if (e.candidate) setTimeout(resolve, 300); });
        setTimeout(resolve, 2000);
      });
      return { pc, stream };
    },
    // connected resolves to Date.now() when pc connects; it rejects if pc
    // fails or is not connected within 15 s.
    connected(pc) {
      return new Promise((resolve, reject) => {
        pc.addEventListener('connectionstatechange', () => {
          if (pc.connectionState === 'connected') resolve(Date.now());
          if (pc.connectionState === 'failed') reject(new Error('peer connection failed'));
        });
        setTimeout(() => reject(new Error('not connected within 15 s')), 15000);
      });
    },
    // outboundStats returns pc's outbound RTP counters by media kind.
    async outboundStats(pc) {
      const stats = {};
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp') stats[r.kind] = { packetsSent: r.packetsSent, bytesSent: r.bytesSent, codec: r.codecId };
      });
      return stats;
    },
  };
}

// run launches one Chromium per participant (each with a fresh profile,
// executable `chromium`), opens each page at url (the server's own origin,
// so its API needs no CORS), installs window.__rtc, and calls
// body(launched) with launched = [{p, page}] in participant order. It prints
// body's result as one JSON line on stdout, closes every browser, and exits
// 0, or 1 if anything failed.
export async function run({ chromium: executablePath, participants, url, log }, body) {
  const dirs = [];
  const contexts = [];
  let code = 0;
  try {
    const launched = await Promise.all(participants.map(async (p) => {
      const dir = mkdtempSync(join(tmpdir(), 'custodian-chromium-'));
      dirs.push(dir);
      const ctx = await chromium.launchPersistentContext(dir, {
        executablePath: executablePath || '/usr/bin/chromium',
        headless: true,
        args: flags(p.audio),
      });
      contexts.push(ctx);
      const page = ctx.pages()[0] || await ctx.newPage();
      page.on('console', (m) => log(p.id, 'console', m.type(), m.text()));
      await page.goto(url);
      await page.evaluate(installPageHelpers);
      return { p, page };
    }));
    log('browsers ready');
    const out = await body(launched);
    process.stdout.write(JSON.stringify(out) + '\n');
  } catch (e) {
    log('error:', e && e.stack || e);
    code = 1;
  } finally {
    await Promise.all(contexts.map((c) => c.close().catch(() => {})));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  process.exit(code);
}
