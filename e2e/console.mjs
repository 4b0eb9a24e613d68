// console.mjs: drives the review console in headless Chromium, as a user
// would, against a running gateway (e2etest/console_test.go starts it,
// records real calls from Chromium publishers and checks what this script
// reports).
//
// Usage: node console.mjs '<json>' with
//   {"url": "http://127.0.0.1:PORT", "chromium": "/usr/bin/chromium", "outDir": "/tmp/shots",
//    "oidcUser": "carol",                       // signs in with single sign-on as this user
//    "adminToken": "cst_…", "supervisorToken": "cst_…", "otherSupervisorToken": "cst_…",
//    "session": "console-1", "phrase": "\"cancel my account\"",
//    "recordings": {"rec_…": 181, …},            // recording id → start offset on the session clock (ms)
//    "recipient": "age1…"}
//
// Prints one JSON object on stdout with what it measured and saw; screenshots
// of every page go to outDir. Exits 1 (with the step that failed on stderr and
// a screenshot <step>-failed.png) when a step cannot be completed.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const cfg = JSON.parse(process.argv[2] || '{}');
for (const k of ['url', 'outDir', 'adminToken', 'supervisorToken', 'otherSupervisorToken', 'session', 'phrase', 'recordings', 'recipient']) {
  if (!cfg[k]) { console.error(`console.mjs: missing "${k}"`); process.exit(2); }
}
mkdirSync(cfg.outDir, { recursive: true });
const t0 = Date.now();
const log = (...a) => console.error(`[console +${Date.now() - t0} ms]`, ...a);
const out = { pageErrors: [], consoleErrors: [], mediaRequests: [] };
const shot = async (page, name) => {
  const path = join(cfg.outDir, `${name}.png`);
  await page.evaluate(() => window.scrollTo(0, 0)); // the sticky top bar stays on top
  await page.screenshot({ path, fullPage: true });
  (out.screenshots ||= []).push(path);
};
const within = (a, b, tol) => Math.abs(a - b) <= tol;

let browser;
let step = 'launch';
let current = null;
let code = 0;

async function newPage(name) {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 800 }, acceptDownloads: true });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => out.pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') out.consoleErrors.push(`${name}: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (r.url().includes('/v1/media/')) {
      out.mediaRequests.push({ who: name, method: r.method(), range: r.headers().range || '' });
    }
  });
  page.on('response', (r) => {
    if (r.url().includes('/v1/media/')) {
      const e = [...out.mediaRequests].reverse().find((x) => x.who === name && x.status === undefined);
      if (e) e.status = r.status();
    }
  });
  current = page;
  return page;
}

// signInWithToken signs a fresh page in by pasting a token.
async function signInWithToken(page, token) {
  await page.goto(`${cfg.url}/`);
  await page.waitForSelector('html[data-ready="true"]');
  await page.fill('input[name=token]', token);
  await page.click('#token-signin');
  await page.waitForSelector('#me-role');
}

async function mediaState(page, rec) {
  return page.$eval(`[data-rec="${rec}"]:is(audio,video)`, (m) => ({
    currentTime: m.currentTime, paused: m.paused, readyState: m.readyState, duration: m.duration,
    error: m.error ? m.error.code : 0, src: m.currentSrc.replace(/\/v1\/media\/.*/, '/v1/media/…'),
  }));
}

try {
  browser = await chromium.launch({
    executablePath: cfg.chromium || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--autoplay-policy=no-user-gesture-required'],
  });

  // 1. First load: bytes transferred and time to interactive, each in a
  //    fresh context (empty cache): three loads, the first in a browser
  //    that has loaded nothing yet.
  step = 'first-load';
  const measure = () => {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const mark = performance.getEntriesByName('console-interactive')[0];
    const before = res.filter((r) => mark && r.startTime < mark.startTime);
    return {
      transferBytes: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
      criticalTransferBytes: nav.transferSize + before.reduce((a, r) => a + r.transferSize, 0),
      criticalRequests: 1 + before.length,
      decodedBytes: nav.decodedBodySize + res.reduce((a, r) => a + r.decodedBodySize, 0),
      requests: 1 + res.length,
      resources: res.map((r) => ({ name: new URL(r.name).pathname, transfer: r.transferSize, decoded: r.decodedBodySize, encoded: r.encodedBodySize })),
      htmlTransfer: nav.transferSize,
      htmlResponseEndMs: nav.responseEnd,
      lastResourceEndMs: Math.max(0, ...res.map((r) => r.responseEnd)),
      domContentLoadedMs: nav.domContentLoadedEventEnd,
      interactiveMs: mark ? mark.startTime : null,
      path: location.pathname,
    };
  };
  let page;
  out.loads = [];
  for (let i = 0; i < 3; i++) {
    const p = await newPage(i ? `cold-${i}` : 'compliance');
    await p.goto(`${cfg.url}/`);
    await p.waitForSelector('html[data-ready="true"]', { timeout: 10000 });
    // The rest of the application loads while the browser is idle: wait
    // until every file has arrived, so the transfer counts all of it.
    await p.waitForFunction(() => performance.getEntriesByType('resource').filter((r) => r.name.includes('/assets/js/pages/')).length >= 8, null, { timeout: 10000 });
    out.loads.push(await p.evaluate(measure));
    if (i) await p.context().close(); else page = p;
  }
  current = page;
  out.firstLoad = out.loads[0];
  log('first loads', JSON.stringify(out.loads.map((l) => ({ ...l, resources: undefined }))));
  await shot(page, '01-signin');

  // 2. Single sign-on: authorization code flow with PKCE at the test issuer.
  step = 'oidc-signin';
  if (cfg.oidcUser) {
    await page.click('#sso-signin');
    await page.waitForSelector('input[name=username]', { timeout: 10000 });
    out.idpURL = page.url().replace(/\?.*/, '');
    await shot(page, '02-identity-provider');
    await page.fill('input[name=username]', cfg.oidcUser);
    await Promise.all([page.waitForURL(`${cfg.url}/**`), page.click('button[type=submit]')]);
    await page.waitForSelector('#me-role', { timeout: 10000 });
    out.oidc = {
      landed: new URL(page.url()).pathname,
      tenant: await page.textContent('#me-tenant'),
      role: await page.textContent('#me-role'),
      department: await page.textContent('#me-department'),
      token: await page.evaluate(() => (sessionStorage.getItem('custodian.token') || '').split('.').length),
    };
    log('signed in with OIDC', JSON.stringify(out.oidc));
  } else {
    await signInWithToken(page, cfg.adminToken);
  }

  // 3. Search a spoken phrase.
  step = 'search';
  await page.waitForSelector('input[name=q]');
  // The participant filter: the agent never said the phrase.
  await page.fill('input[name=q]', cfg.phrase);
  await page.fill('input[name=participant_id]', 'agent');
  await page.click('#search-submit');
  await page.waitForURL('**participant_id=agent**');
  await page.waitForSelector('#results-title, .alert.error', { timeout: 15000 });
  out.filtered = { summary: await page.textContent('#results-title, .alert.error'), hits: await page.$$eval('#hits li', (ls) => ls.length) };
  log('filtered search', JSON.stringify(out.filtered));
  await page.fill('input[name=participant_id]', '');
  await page.fill('input[name=session_id]', cfg.session);
  await page.click('#search-submit');
  await page.waitForSelector('#hits li, .alert.error', { timeout: 15000 });
  out.search = await page.evaluate(() => ({
    summary: document.getElementById('results-title')?.textContent || document.querySelector('.alert.error')?.textContent,
    hits: [...document.querySelectorAll('#hits a.hit')].map((a) => ({
      rec: a.dataset.rec, offset: Number(a.dataset.offset), href: a.getAttribute('href'),
      speaker: a.querySelector('.speaker').textContent, snippet: a.querySelector('.snippet').textContent,
      marks: [...a.querySelectorAll('mark')].map((m) => m.textContent),
    })),
    url: location.pathname + location.search,
  }));
  log('search', JSON.stringify(out.search));
  await shot(page, '03-search');
  if (!out.search.hits.length) throw new Error(`no hits for ${cfg.phrase}: ${out.search.summary}`);

  // 4. Open the hit: the session page, its recording's player at the hit.
  step = 'open-hit';
  const hit = out.search.hits[0];
  await page.click('#hits a.hit >> nth=0');
  await page.waitForURL(`**/sessions/**`);
  await page.waitForSelector(`[data-rec="${hit.rec}"]:is(audio,video)`);
  await page.waitForFunction(({ rec, t }) => {
    const m = document.querySelector(`[data-rec="${rec}"]:is(audio,video)`);
    return m && m.readyState >= 1 && !m.seeking && Math.abs(m.currentTime - t) < 0.5;
  }, { rec: hit.rec, t: hit.offset / 1000 }, { timeout: 15000 });
  out.session = { url: new URL(page.url()).pathname + new URL(page.url()).search, atHit: await mediaState(page, hit.rec), expectedAt: hit.offset / 1000 };
  out.session.participants = await page.$$eval('#participants tbody tr', (rows) => rows.map((r) => r.textContent.replace(/\s+/g, ' ').trim()));
  out.session.transcriptWords = await page.$$eval('#transcript .w', (ws) => ws.length);
  out.session.redacted = await page.$$eval('#transcript .w.redacted', (ws) => ws.map((w) => w.textContent));
  out.session.timelines = await page.$$eval('.timeline', (ts) => ts.map((t) => t.getAttribute('aria-label')));
  out.session.pausedSpans = await page.$$eval('.timeline .span.paused', (ss) => ss.filter((s) => s.getBoundingClientRect().width >= 2).length);
  log('session at hit', JSON.stringify(out.session));
  await shot(page, '04-session-at-hit');

  // 5. Play: currentTime advances and the transcript follows.
  step = 'play';
  const before = (await mediaState(page, hit.rec)).currentTime;
  await page.click(`button.play[data-rec="${hit.rec}"]`);
  await page.waitForFunction(({ rec, t }) => {
    const m = document.querySelector(`[data-rec="${rec}"]:is(audio,video)`);
    return m && !m.paused && m.currentTime > t + 1.0;
  }, { rec: hit.rec, t: before }, { timeout: 10000 });
  const playing = await mediaState(page, hit.rec);
  out.play = { before, after: playing.currentTime, followed: await page.$$eval('#transcript .w.now', (ws) => ws.map((w) => ({ word: w.textContent, rec: w.dataset.rec, ms: Number(w.dataset.ms) }))) };
  await shot(page, '05-session-playing');
  await page.click(`button.play[data-rec="${hit.rec}"]`); // pause
  log('play', JSON.stringify(out.play));

  // 6. Click a transcript word (of another recording when there is one):
  //    its player seeks to the word.
  step = 'click-word';
  const words = await page.$$eval('#transcript .w:not(.redacted)', (ws) => ws.map((w, i) => ({ i, rec: w.dataset.rec, ms: Number(w.dataset.ms), word: w.textContent })));
  const other = words.filter((w) => w.rec !== hit.rec && cfg.recordings[w.rec] !== undefined);
  const pool = other.length ? other : words;
  const target = pool[Math.floor(pool.length / 2)];
  const wordEl = page.locator('#transcript .w:not(.redacted)').nth(target.i);
  await wordEl.scrollIntoViewIfNeeded();
  await wordEl.click();
  const expect = (target.ms - cfg.recordings[target.rec]) / 1000;
  await page.waitForFunction(({ rec, t }) => {
    const m = document.querySelector(`[data-rec="${rec}"]:is(audio,video)`);
    return m && m.readyState >= 1 && !m.seeking && Math.abs(m.currentTime - t) < 0.5;
  }, { rec: target.rec, t: expect }, { timeout: 15000 }).catch(() => {});
  const afterClick = await mediaState(page, target.rec);
  out.word = { ...target, expected: expect, currentTime: afterClick.currentTime, paused: afterClick.paused };
  log('word click', JSON.stringify(out.word));
  await page.waitForTimeout(600);
  await shot(page, '06-session-word-clicked');
  await page.$$eval('audio,video', (ms) => ms.forEach((m) => m.pause()));

  // 6b. The keyboard does the same: the transcript is one tab stop, arrow
  //     keys move between words, Enter plays from the focused word.
  step = 'keyboard';
  await page.focus('#transcript .w[tabindex="0"]');
  for (let k = 0; k < 3; k++) await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowDown');
  const focused = await page.evaluate(() => {
    const w = document.activeElement;
    return w && w.classList.contains('w') ? { rec: w.dataset.rec, ms: Number(w.dataset.ms), word: w.textContent, tabindex: w.tabIndex } : null;
  });
  if (!focused) throw new Error('arrow keys did not move the focus to a word');
  await page.keyboard.press('Enter');
  const kexpect = (focused.ms - cfg.recordings[focused.rec]) / 1000;
  await page.waitForFunction(({ rec, t }) => {
    const m = document.querySelector(`[data-rec="${rec}"]:is(audio,video)`);
    return m && !m.seeking && Math.abs(m.currentTime - t) < 0.5;
  }, { rec: focused.rec, t: kexpect }, { timeout: 15000 }).catch(() => {});
  out.keyboard = { ...focused, expected: kexpect, currentTime: (await mediaState(page, focused.rec)).currentTime,
    tabStops: await page.$$eval('#transcript [tabindex="0"]', (es) => es.length) };
  log('keyboard', JSON.stringify(out.keyboard));
  await page.$$eval('audio,video', (ms) => ms.forEach((m) => m.pause()));

  // 7. Place a legal hold on the session and release it.
  step = 'hold';
  await page.click('#nav a[href="/holds"]');
  await page.waitForSelector('#hold-form');
  const holdName = `Console test hold ${Date.now()}`;
  await page.fill('#hold-form input[name=name]', holdName);
  await page.fill('#hold-form textarea[name=reason]', 'Preservation request in the console end-to-end test');
  await page.fill('#hold-form textarea[name=session_ids]', cfg.session);
  await page.click('#hold-submit');
  await page.waitForSelector('#hold-result .alert');
  const holdMsg = await page.textContent('#hold-result .alert');
  const holdID = (holdMsg.match(/\((hold_[^)]+)\)/) || [])[1];
  if (!holdID) throw new Error(`hold not placed: ${holdMsg}`);
  await page.waitForSelector(`#holds tr[data-hold="${holdID}"]`);
  out.hold = { id: holdID, name: holdName, placed: holdMsg.trim() };
  await shot(page, '07-holds-placed');
  await page.click(`button[data-hold="${holdID}"]`);
  await page.waitForSelector('dialog[open]');
  await shot(page, '08-holds-release-confirm');
  await page.click('dialog[open] button[value=yes]');
  await page.waitForSelector(`#holds tr[data-hold="${holdID}"]`, { state: 'detached' });
  await page.selectOption('#hold-status', 'released');
  await page.waitForSelector(`#holds tr[data-hold="${holdID}"]`);
  out.hold.releasedRow = (await page.textContent(`#holds tr[data-hold="${holdID}"]`)).replace(/\s+/g, ' ').trim();
  log('hold', JSON.stringify(out.hold));
  await shot(page, '09-holds-released');

  // 8. The audit log shows the entries those actions wrote; the chain
  //    verifies.
  step = 'audit';
  await page.click('#nav a[href="/audit"]');
  await page.waitForSelector('#verify-result');
  await page.fill('#audit-filter input[name=target]', `legalhold:${holdID}`);
  await page.click('#audit-filter button[type=submit]');
  await page.waitForFunction(() => document.getElementById('verify-result') && document.querySelectorAll('#audit-entries tbody tr[data-action]').length >= 2, null, { timeout: 10000 });
  out.audit = await page.evaluate(() => ({
    verify: document.getElementById('verify-result').textContent,
    headHash: document.getElementById('head-hash').textContent,
    entries: [...document.querySelectorAll('#audit-entries tbody tr[data-action]')].map((r) => ({ seq: Number(r.dataset.seq), action: r.dataset.action, text: r.textContent.replace(/\s+/g, ' ').trim() })),
  }));
  await shot(page, '10-audit-holds');
  await page.fill('#audit-filter input[name=target]', '');
  await page.fill('#audit-filter input[name=action]', 'media.read');
  await page.click('#audit-filter button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#audit-entries tbody tr[data-action="media.read"]').length >= 1, null, { timeout: 10000 });
  out.audit.mediaReads = await page.$$eval('#audit-entries tbody tr[data-action="media.read"]', (rs) => rs.length);
  log('audit', JSON.stringify(out.audit));
  await shot(page, '11-audit-media');

  // 9. Export the session to an age recipient and download the bundle.
  step = 'export';
  await page.click('#nav a[href="/exports"]');
  await page.waitForSelector('#export-form');
  await page.fill('#export-form input[name=recipient]', cfg.recipient);
  await page.fill('#export-form input[name=name]', 'Console test export');
  await page.fill('#export-form textarea[name=session_ids]', cfg.session);
  await page.click('#export-submit');
  await page.waitForSelector('#exports button[data-export]', { timeout: 60000 });
  const exportID = await page.getAttribute('#exports button[data-export]', 'data-export');
  await shot(page, '12-exports');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#exports button[data-export="${exportID}"]`)]);
  const file = join(cfg.outDir, 'export.zip.age');
  await download.saveAs(file);
  out.export = { id: exportID, file, suggested: download.suggestedFilename() };
  log('export', JSON.stringify(out.export));

  // 10. Policies as an admin: view, then a bad edit is refused with the
  //     error at its line.
  step = 'policies';
  page = await newPage('admin');
  await signInWithToken(page, cfg.adminToken);
  await page.click('#nav a[href="/policies"]');
  await page.waitForSelector('#policy-text');
  await shot(page, '13-policies');
  const text = await page.inputValue('#policy-text');
  const lines = text.split('\n');
  const i = lines.findIndex((l) => /^\s+record:/.test(l));
  if (i < 0) throw new Error('no record: line in the policy document');
  lines[i] = lines[i].replace(/record:.*/, 'record: sometimes');
  await page.fill('#policy-text', lines.join('\n'));
  await page.click('#policy-save');
  await page.waitForSelector('.editor .msg');
  out.policies = {
    badLine: i + 1,
    marked: await page.$$eval('.editor .msg', (ms) => ms.map((m) => ({ line: Number(m.dataset.line), text: m.textContent }))),
    gutter: await page.$$eval('.editor .gutter .err', (ds) => ds.map((d) => Number(d.textContent))),
    errors: await page.$$eval('#policy-errors li', (ls) => ls.map((l) => l.textContent)),
    version: await page.textContent('#policy-version'),
  };
  await shot(page, '14-policies-error');
  // A good edit is saved as the next version.
  const good = text.replace(/retention: *30d/, 'retention: 31d');
  if (good === text) throw new Error('no "retention: 30d" in the policy document');
  await page.fill('#policy-text', good);
  await page.click('#policy-save');
  await page.waitForSelector('#policy-result .alert.ok');
  out.policies.saved = await page.textContent('#policy-result .alert.ok');
  out.policies.savedVersion = await page.textContent('#policy-version');
  out.policies.marksAfterSave = await page.$$eval('.editor .msg:not(.warn)', (ms) => ms.length);
  log('policies', JSON.stringify(out.policies));
  await shot(page, '14b-policies-saved');

  // 11. A supervisor of another department cannot open the session; a
  //     supervisor of its department can.
  step = 'supervisor-other';
  page = await newPage('supervisor-other');
  await signInWithToken(page, cfg.otherSupervisorToken);
  out.otherSupervisor = { department: await page.textContent('#me-department'), nav: await page.$$eval('#nav a', (as) => as.map((a) => a.textContent)) };
  await page.goto(`${cfg.url}/sessions/${encodeURIComponent(cfg.session)}`);
  await page.waitForSelector('#session-error, .rec', { timeout: 10000 });
  out.otherSupervisor.session = await page.evaluate(() => ({
    error: document.getElementById('session-error')?.textContent || '',
    players: document.querySelectorAll('audio,video').length,
  }));
  await shot(page, '15-supervisor-other-department');
  await page.goto(`${cfg.url}/holds`);
  await page.waitForSelector('.alert.error', { timeout: 10000 });
  out.otherSupervisor.holds = await page.textContent('.alert.error');
  await shot(page, '16-supervisor-holds-forbidden');
  log('other supervisor', JSON.stringify(out.otherSupervisor));

  step = 'supervisor-same';
  page = await newPage('supervisor');
  await signInWithToken(page, cfg.supervisorToken);
  await page.goto(`${cfg.url}/sessions/${encodeURIComponent(cfg.session)}`);
  await page.waitForSelector('#session-error, .rec', { timeout: 10000 });
  out.supervisor = await page.evaluate(() => ({
    error: document.getElementById('session-error')?.textContent || '',
    players: document.querySelectorAll('audio,video').length,
    department: document.getElementById('me-department').textContent,
  }));
  await shot(page, '17-supervisor-own-department');
  await page.click('#nav a[href="/sessions"]');
  await page.waitForSelector('table[aria-label="Sessions"] tbody tr');
  out.supervisor.sessions = await page.$$eval('table[aria-label="Sessions"] tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent.trim()).join(' ')));
  await shot(page, '17b-supervisor-sessions');
  log('supervisor', JSON.stringify(out.supervisor));
  // 12. A credential revoked while the console is open: the next API call
  //     answers 401 and the console asks to sign in again, keeping the page.
  if (cfg.revocableToken) {
    step = 'revoked';
    page = await newPage('revoked');
    await signInWithToken(page, cfg.revocableToken);
    const resp = await fetch(`${cfg.url}/v1/tokens/${cfg.revocableTokenID}`, { method: 'DELETE', headers: { Authorization: `Bearer ${cfg.adminToken}` } });
    if (resp.status !== 200) throw new Error(`revoke: ${resp.status}`);
    await page.click('#nav a[href="/sessions"]');
    await page.waitForURL('**/signin?**', { timeout: 10000 });
    const u = new URL(page.url());
    out.revoked = { path: u.pathname, next: u.searchParams.get('next'), message: await page.textContent('.alert'), token: await page.evaluate(() => sessionStorage.getItem('custodian.token')) };
    log('revoked', JSON.stringify(out.revoked));
    await shot(page, '18-signed-out-after-revocation');
  }
  step = 'done';
} catch (e) {
  code = 1;
  out.failed = { step, error: String(e && e.stack || e) };
  log(`step ${step} failed:`, e && e.stack || e);
  if (current) await shot(current, `${step}-failed`).catch(() => {});
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(code);
