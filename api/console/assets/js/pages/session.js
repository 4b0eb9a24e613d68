// Session: participants and consent, recordings with status,
// completeness timeline and a player each, and the merged speaker-labelled
// transcript that follows playback; clicking a word seeks there.
//
// Players stream through media tickets (POST
// /v1/recordings/{id}/media-ticket): <audio> and <video> cannot send an
// Authorization header, so each gets a short-lived URL for its one
// recording. The browser seeks with HTTP Range requests on that URL.
import { h, alertBox, ms, when, clock, badge, bytes, announce, replace } from '../dom.js';
import { get, send, message, ApiError } from '../api.js';
import { recordingStatusBadge } from './sessions.js';

export const title = 'Session';

const PLAYABLE = ['complete', 'failed', 'recovered'];
const REDACTED = /^\[REDACTED:([A-Z_]+)\]$/;
const TICKET_MARGIN_MS = 30000; // renew a media ticket this long before it expires

export async function render(main, ctx) {
  const id = ctx.params[0];
  ctx.setTitle(`Session ${id}`);
  const heading = h('h1', null, 'Session ', h('code', null, id));
  main.append(heading);
  let s;
  try {
    s = await get(`/v1/sessions/${encodeURIComponent(id)}`);
  } catch (err) {
    const text = err instanceof ApiError && err.status === 404
      ? 'Session not found. It does not exist, or it is outside your tenant or department.'
      : message(err, 'open sessions', ctx.me);
    const box = alertBox('error', text);
    box.id = 'session-error';
    main.append(box, h('p', null, h('a', { href: '/sessions', 'data-nav': true }, 'Back to the sessions')));
    return;
  }
  const view = new SessionView(main, ctx, s);
  await view.load();
  return () => view.destroy();
}

class SessionView {
  constructor(main, ctx, s) {
    this.main = main;
    this.ctx = ctx;
    this.s = s;
    this.players = new Map(); // recording id → Player
    this.words = new Map(); // recording id → [{start, end, el, seg}]
    this.current = null; // the word element marked as now
    this.active = null; // the Player that plays (or played last)
    this.destroyed = false;
    this.follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
  }

  async load() {
    const { s, ctx } = this;
    const names = new Map((s.participants || []).map((p) => [p.id, p.name || p.id]));
    this.names = names;
    const recs = await Promise.all((s.recordings || []).map((r) =>
      get(`/v1/recordings/${encodeURIComponent(r.id)}`).catch((err) => ({ ...r, error: err }))));
    let transcript = null, transcriptErr = null;
    try {
      transcript = await get(`/v1/sessions/${encodeURIComponent(s.id)}/transcript`);
    } catch (err) {
      transcriptErr = err;
    }
    if (this.destroyed) return;
    const speakers = [...new Set([...(s.participants || []).map((p) => p.id), ...recs.map((r) => r.participant_id)])];
    this.speakerClass = (pid) => `spk-${Math.max(0, speakers.indexOf(pid)) % 5}`;

    const left = h('div', null, this.facts(recs), this.participants(), h('h2', null, 'Recordings'),
      recs.length ? recs.map((r) => this.recording(r)) : h('p', { class: 'muted' }, 'No recordings.'));
    const right = h('section', { 'aria-labelledby': 'transcript-title' },
      h('div', { class: 'rec-head' }, h('h2', { id: 'transcript-title' }, 'Transcript'),
        h('label', { class: 'follow', for: 'follow' }, this.follow, 'Follow playback')),
      this.transcript(transcript, transcriptErr, recs));
    this.main.append(h('div', { class: 'session-layout' }, left, right));

    // Ticket every playable recording (no media is read until it plays
    // or seeks), then position the one the search hit named.
    await Promise.all([...this.players.values()].map((p) => p.ticket().catch(() => {})));
    const rec = ctx.query.get('rec');
    const t = Number(ctx.query.get('t'));
    if (rec && this.players.has(rec)) {
      const p = this.players.get(rec);
      await p.seek(Number.isFinite(t) ? t / 1000 : 0, false);
      p.card.scrollIntoView({ block: 'nearest' });
      announce(`Positioned at ${ms(t)} in ${p.label}. Press Play to listen.`);
    }
  }

  destroy() {
    this.destroyed = true;
    for (const p of this.players.values()) p.destroy();
  }

  facts(recs) {
    const s = this.s;
    const d = s.decision || {};
    const holds = [...new Set(recs.flatMap((r) => (r.retention && r.retention.legal_holds) || []))];
    const rows = [
      ['Department', s.department || '—'],
      ['Status', badge(s.status, s.status === 'active' ? 'ok' : 'neutral')],
      ['Recording', recordingStatusBadge(s.recording_status)],
      ['Started', when(s.started_at)],
      ['Ended', when(s.ended_at)],
      ['Policy', d.rule ? `${d.rule} (record ${d.record}, consent ${d.consent}${d.redact_pii ? ', PII redacted' : ''})` : 'default'],
      ['Labels', s.labels && Object.keys(s.labels).length ? Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(', ') : '—'],
      ['Legal hold', holds.length ? badge(`held (${holds.length})`, 'warn') : 'none'],
    ];
    const actions = [];
    if (this.ctx.can('holds:write')) {
      actions.push(h('a', { class: 'button secondary', href: `/holds?session=${encodeURIComponent(s.id)}`, 'data-nav': true }, 'Place a legal hold…'));
    }
    if (this.ctx.can('exports:write')) {
      actions.push(h('a', { class: 'button secondary', href: `/exports?session=${encodeURIComponent(s.id)}`, 'data-nav': true }, 'Export…'));
    }
    return h('div', { class: 'panel' },
      h('dl', { class: 'meta' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      actions.length ? h('div', { class: 'actions' }, actions) : null);
  }

  participants() {
    const ps = this.s.participants || [];
    const consentKind = { granted: 'ok', denied: 'bad', unknown: 'warn' };
    return [h('h2', null, 'Participants'), ps.length ? h('table', { id: 'participants', 'aria-label': 'Participants' },
      h('thead', null, h('tr', null, ['Participant', 'Consent', 'Joined', 'Left'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, ps.map((p) => h('tr', null,
        h('td', null, h('span', { class: this.speakerClass(p.id) }, h('strong', null, p.name || p.id)), p.name ? h('div', { class: 'muted' }, h('code', null, p.id)) : null),
        h('td', null, badge(p.consent || 'unknown', consentKind[p.consent] || 'warn'),
          p.consent_method ? h('div', { class: 'muted', title: when(p.consent_at) }, `${p.consent_method}, ${clock(p.consent_at)}`) : null),
        h('td', { class: 'nowrap', title: when(p.joined_at) }, clock(p.joined_at)),
        h('td', { class: 'nowrap', title: when(p.left_at) }, clock(p.left_at))))))
      : h('p', { class: 'muted' }, 'No participants.')];
  }

  recording(r) {
    const label = this.names.get(r.participant_id) || r.participant_id;
    const card = h('article', { class: 'rec', id: `rec-${r.id}`, 'aria-label': `Recording of ${label}` });
    const statusKind = { complete: 'ok', recording: 'ok', finalizing: 'warn', failed: 'bad', recovered: 'warn', deleted: 'bad' }[r.status] || 'neutral';
    card.append(h('div', { class: 'rec-head' },
      h('h3', null, h('span', { class: this.speakerClass(r.participant_id) }, label)),
      h('span', null, badge(r.status, statusKind), ' ', r.retention && r.retention.legal_hold ? badge('legal hold', 'warn') : null)));
    if (r.error) {
      card.append(alertBox('error', message(r.error, 'read this recording', this.ctx.me)));
      return card;
    }
    const c = r.completeness || {};
    const lossPct = c.packets_expected ? (100 * (c.packets_lost || 0) / c.packets_expected) : 0;
    const tr = r.transcript;
    card.append(h('div', { class: 'facts' },
      h('span', null, `${r.content_type || 'media'} (${(r.codecs || []).join(', ') || '—'})`),
      h('span', null, `duration ${ms(r.duration_ms)}`),
      h('span', null, `starts at ${ms(r.start_offset_ms)} in the session`),
      h('span', null, `${bytes(r.size)}`),
      c.packets_expected != null ? h('span', null, `packets lost ${c.packets_lost || 0} of ${c.packets_expected} (${lossPct.toFixed(2)} %)`) : null,
      h('span', null, `transcript: ${tr ? tr.status + (tr.redacted ? ', redacted' : '') : 'none'}`),
      r.failure_reason ? h('span', null, `failure: ${r.failure_reason}`) : null));
    const timeline = new Timeline(r);
    card.append(timeline.el, timeline.legend);
    if (r.deleted) {
      card.append(alertBox('warn', `Deleted ${when(r.deleted.at)} (${r.deleted.reason || 'deleted'}): the key was destroyed.`));
    } else if (PLAYABLE.includes(r.status) && this.ctx.can('media:read')) {
      const p = new Player(this, r, label, card, timeline);
      this.players.set(r.id, p);
      card.append(p.el);
    } else if (!PLAYABLE.includes(r.status)) {
      card.append(h('p', { class: 'muted' }, 'Playable when the recording is finalized.'));
    }
    return card;
  }

  transcript(t, err, recs) {
    const box = h('div', { class: 'transcript', id: 'transcript', role: 'group', 'aria-label': 'Transcript words; arrow keys move, Enter plays from a word' });
    this.box = box;
    if (err) return alertBox('error', message(err, 'read transcripts', this.ctx.me));
    const segs = (t && t.segments) || [];
    if (!segs.length) {
      const pending = recs.filter((r) => r.transcript && ['pending', 'running'].includes(r.transcript.status)).length;
      box.append(h('p', { class: 'muted', style: null }, pending ? `Transcription is in progress for ${pending} recording(s). Reload later.` : 'No transcript for this session.'));
      return box;
    }
    const redactions = t.redactions || [];
    const inRedaction = (recID, w) => redactions.some((r) => (!r.recording_id || r.recording_id === recID) && w.start_ms < r.end_ms && w.end_ms > r.start_ms);
    let first = null;
    for (const seg of segs) {
      const recID = seg.recording_id;
      const segEl = h('div', { class: 'seg', dataset: { rec: recID || '', ms: String(seg.start_ms) } });
      const text = h('div', { class: 'text' });
      const list = this.words.get(recID) || [];
      this.words.set(recID, list);
      const ws = seg.words && seg.words.length ? seg.words : [{ start_ms: seg.start_ms, end_ms: seg.end_ms, word: seg.text }];
      ws.forEach((w, i) => {
        const m = REDACTED.exec(w.word);
        let el;
        if (m) {
          const kind = m[1].toLowerCase().replace('_', ' ');
          el = h('span', { class: 'w redacted', role: 'button', tabindex: -1, 'aria-label': `${kind} redacted, at ${ms(w.start_ms)}`, title: `Redacted ${kind} (${ms(w.start_ms)}–${ms(w.end_ms)})` }, `${kind} redacted`);
        } else {
          el = h('span', { class: ['w', inRedaction(recID, w) ? 'redacted' : null], role: 'button', tabindex: -1, title: ms(w.start_ms) }, w.word);
        }
        el.dataset.ms = String(w.start_ms);
        el.dataset.rec = recID || '';
        if (!first) { first = el; el.tabIndex = 0; }
        if (i) text.append(' ');
        text.append(el);
        list.push({ start: w.start_ms, end: w.end_ms, el, seg: segEl });
      });
      const speaker = seg.speaker || this.names.get(seg.participant_id) || seg.participant_id || '';
      segEl.append(h('div', { class: ['who-said', this.speakerClass(seg.participant_id)] }, speaker,
        h('div', null, h('button', { type: 'button', class: 'link', tabindex: -1, 'aria-hidden': 'true', title: 'Play from here (session time)', dataset: { ms: String(seg.start_ms), rec: recID || '' } }, ms(seg.start_ms, false)))), text);
      box.append(segEl);
    }
    for (const list of this.words.values()) list.sort((a, b) => a.start - b.start);
    box.addEventListener('click', (e) => {
      const el = e.target.closest('[data-ms]');
      if (!el || el.classList.contains('seg')) return;
      this.seekWord(el);
    });
    box.addEventListener('keydown', (e) => this.keys(e));
    return box;
  }

  // keys moves between words (roving tabindex) and plays from one.
  keys(e) {
    const all = [...this.box.querySelectorAll('.w')];
    const i = all.indexOf(document.activeElement);
    if (i < 0) return;
    let j = i;
    switch (e.key) {
      case 'ArrowRight': j = i + 1; break;
      case 'ArrowLeft': j = i - 1; break;
      case 'ArrowDown': {
        const seg = all[i].closest('.seg').nextElementSibling;
        j = seg ? all.indexOf(seg.querySelector('.w')) : i; break;
      }
      case 'ArrowUp': {
        const seg = all[i].closest('.seg').previousElementSibling;
        j = seg ? all.indexOf(seg.querySelector('.w')) : i; break;
      }
      case 'Home': j = 0; break;
      case 'End': j = all.length - 1; break;
      case 'Enter': case ' ': e.preventDefault(); this.seekWord(all[i]); return;
      default: return;
    }
    e.preventDefault();
    j = Math.max(0, Math.min(all.length - 1, j));
    all[i].tabIndex = -1;
    all[j].tabIndex = 0;
    all[j].focus();
  }

  // seekWord plays the word's recording from the word.
  async seekWord(el) {
    const p = this.players.get(el.dataset.rec);
    if (!p) { announce('This recording cannot be played.'); return; }
    const t = (Number(el.dataset.ms) - (p.r.start_offset_ms || 0)) / 1000;
    await p.seek(t, true);
  }

  // setActive makes p the player the transcript follows; others pause.
  setActive(p) {
    if (this.active && this.active !== p) this.active.pause();
    for (const q of this.players.values()) q.card.classList.toggle('active', q === p);
    this.active = p;
  }

  // track marks the word at session time tMS of recording recID and
  // scrolls it into view when following playback.
  track(recID, tMS) {
    const list = this.words.get(recID);
    if (!list || !list.length) return;
    let lo = 0, hi = list.length - 1, at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].start <= tMS) { at = mid; lo = mid + 1; } else hi = mid - 1;
    }
    const w = at >= 0 && tMS < Math.max(list[at].end, list[at].start + 1500) ? list[at] : null;
    const el = w ? w.el : null;
    if (el === this.current) return;
    if (this.current) {
      this.current.classList.remove('now');
      this.current.closest('.seg').classList.remove('now');
    }
    this.current = el;
    if (!el) return;
    el.classList.add('now');
    w.seg.classList.add('now');
    if (this.follow.checked) {
      const box = this.box, r = w.seg.getBoundingClientRect(), b = box.getBoundingClientRect();
      if (r.top < b.top || r.bottom > b.bottom) box.scrollTo({ top: box.scrollTop + (r.top - b.top) - b.height / 3, behavior: 'smooth' });
    }
  }
}

// Timeline draws a recording's duration with its lost (red) and paused
// (hatched) spans and the playhead; it is a slider for seeking.
class Timeline {
  constructor(r) {
    this.r = r;
    const dur = Math.max(1, r.duration_ms || 0);
    const c = r.completeness || {};
    const lost = c.lost_ranges || [];
    const paused = (c.paused_ranges || []).filter((x) => x.end_ms > x.start_ms);
    const sum = (xs) => xs.reduce((a, x) => a + Math.max(0, x.end_ms - x.start_ms), 0);
    this.head = h('div', { class: 'head', hidden: true });
    this.el = h('div', {
      class: 'timeline', role: 'slider', tabindex: 0,
      'aria-label': `Timeline of the recording: ${lost.length} lost span(s), ${ms(sum(lost))} lost; ${paused.length} paused span(s), ${ms(sum(paused))} paused`,
      'aria-valuemin': 0, 'aria-valuemax': Math.round(dur / 1000), 'aria-valuenow': 0, 'aria-valuetext': ms(0),
    });
    const span = (x, cls, what) => {
      const el = h('div', { class: `span ${cls}`, title: `${what} ${ms(x.start_ms)}–${ms(x.end_ms)}` });
      el.style.left = `${(100 * x.start_ms) / dur}%`;
      el.style.width = `${(100 * Math.max(0, x.end_ms - x.start_ms)) / dur}%`;
      return el;
    };
    for (const x of paused) this.el.append(span(x, 'paused', x.kind === 'excluded_no_consent' ? 'No consent' : 'Paused'));
    for (const x of lost) this.el.append(span(x, 'lost', 'Lost'));
    this.el.append(this.head);
    this.legend = h('div', { class: 'legend', 'aria-hidden': 'true' },
      h('span', { class: 'l-rec' }, 'recorded'), h('span', { class: 'l-lost' }, `lost (${lost.length})`), h('span', { class: 'l-paused' }, `paused or no consent (${paused.length})`));
    this.dur = dur;
  }

  position(sec) {
    const pct = Math.min(100, Math.max(0, (100 * sec * 1000) / this.dur));
    this.head.hidden = false;
    this.head.style.left = `calc(${pct}% - 1px)`;
    this.el.setAttribute('aria-valuenow', String(Math.round(sec)));
    this.el.setAttribute('aria-valuetext', ms(sec * 1000));
  }
}

// Player is one recording's <audio> or <video> element on a media ticket.
class Player {
  constructor(view, r, label, card, timeline) {
    this.view = view;
    this.r = r;
    this.label = label;
    this.card = card;
    this.timeline = timeline;
    this.expires = 0;
    const video = (r.content_type || '').startsWith('video/');
    this.media = h(video ? 'video' : 'audio', { controls: true, preload: 'none', 'aria-label': `Recording of ${label}`, dataset: { rec: r.id } });
    this.media.playsInline = true;
    this.button = h('button', { type: 'button', class: 'secondary play', dataset: { rec: r.id }, 'aria-label': `Play the recording of ${label}` }, 'Play');
    this.clock = h('span', { class: 'muted mono', 'aria-hidden': 'true' }, `${ms(0)} / ${ms(r.duration_ms)}`);
    this.err = h('div');
    this.el = h('div', null, this.media, h('div', { class: 'actions' }, this.button, this.clock), this.err);
    this.raf = 0;
    this.button.addEventListener('click', () => (this.media.paused ? this.play() : this.pause()));
    const m = this.media;
    m.addEventListener('play', () => { this.playing = true; this.view.setActive(this); this.button.textContent = 'Pause'; this.loop(); });
    m.addEventListener('pause', () => { this.playing = false; this.button.textContent = 'Play'; cancelAnimationFrame(this.raf); this.tick(); });
    m.addEventListener('ended', () => { this.playing = false; });
    m.addEventListener('seeked', () => this.tick());
    m.addEventListener('timeupdate', () => { if (m.paused) this.tick(); });
    m.addEventListener('error', () => this.failed());
    timeline.el.addEventListener('click', (e) => {
      const b = timeline.el.getBoundingClientRect();
      this.seek(((e.clientX - b.left) / b.width) * (r.duration_ms / 1000), !m.paused);
    });
    timeline.el.addEventListener('keydown', (e) => {
      const step = { ArrowRight: 5, ArrowUp: 5, ArrowLeft: -5, ArrowDown: -5, PageUp: 30, PageDown: -30 }[e.key];
      if (step === undefined && e.key !== 'Home' && e.key !== 'End') return;
      e.preventDefault();
      const t = e.key === 'Home' ? 0 : e.key === 'End' ? r.duration_ms / 1000 : (m.currentTime || 0) + step;
      this.seek(Math.max(0, t), !m.paused);
    });
  }

  destroy() {
    cancelAnimationFrame(this.raf);
    this.media.pause();
    this.media.removeAttribute('src');
    this.media.load();
  }

  // ticket (re)issues the media URL; the position is kept.
  async ticket() {
    const t = await send('POST', `/v1/recordings/${encodeURIComponent(this.r.id)}/media-ticket`);
    this.expires = Date.parse(t.expires_at);
    const m = this.media, at = m.currentTime || 0, had = !!m.getAttribute('src');
    m.src = t.url;
    if (had && at) await this.whenReady(() => { m.currentTime = at; });
    return t;
  }

  async fresh() {
    if (!this.expires || Date.now() > this.expires - TICKET_MARGIN_MS) {
      try {
        await this.ticket();
      } catch (err) {
        replace(this.err, alertBox('error', message(err, 'play this recording', this.view.ctx.me)));
        throw err;
      }
    }
  }

  whenReady(fn) {
    const m = this.media;
    return new Promise((resolve) => {
      if (m.readyState >= 1) { fn(); resolve(); return; }
      m.addEventListener('loadedmetadata', () => { fn(); resolve(); }, { once: true });
      if (m.preload === 'none') { m.preload = 'metadata'; m.load(); }
    });
  }

  // seek moves to sec of the recording (and plays when asked); resolves
  // when the element has seeked.
  async seek(sec, play) {
    await this.fresh();
    const m = this.media;
    this.view.setActive(this);
    await this.whenReady(() => {});
    await new Promise((resolve) => {
      const done = () => { m.removeEventListener('seeked', done); resolve(); };
      m.addEventListener('seeked', done);
      m.currentTime = Math.max(0, Math.min(sec, Number.isFinite(m.duration) ? m.duration : sec));
      this.tick();
      setTimeout(done, 3000);
    });
    this.tick();
    if (play) await this.play();
  }

  async play() {
    await this.fresh();
    this.view.setActive(this);
    try {
      await this.media.play();
      replace(this.err);
    } catch (e) {
      if (e.name !== 'AbortError') replace(this.err, alertBox('error', `Playback failed: ${e.message}`));
    }
  }

  pause() { this.media.pause(); }

  loop() {
    this.tick();
    if (!this.media.paused) this.raf = requestAnimationFrame(() => this.loop());
  }

  tick() {
    const t = this.media.currentTime || 0;
    this.timeline.position(t);
    this.clock.textContent = `${ms(t * 1000)} / ${ms(this.r.duration_ms)}`;
    if (this.view.active === this) this.view.track(this.r.id, (this.r.start_offset_ms || 0) + t * 1000);
  }

  // failed renews an expired ticket (once per ticket) and goes on where
  // playback stopped; other errors are shown.
  async failed() {
    const e = this.media.error;
    if (!e || !this.media.getAttribute('src')) return;
    if (Date.now() > this.expires - TICKET_MARGIN_MS && this.retriedFor !== this.expires) {
      this.retriedFor = this.expires;
      const resume = this.playing;
      try {
        await this.ticket();
        if (resume) await this.play();
        return;
      } catch { /* shown below */ }
    }
    replace(this.err, alertBox('error', `The recording could not be played (${e.message || `media error ${e.code}`}).`));
  }
}
