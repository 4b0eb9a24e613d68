// Search: GET /v1/search with the API's syntax and filters; each hit
// links to its session at the moment it was said.
import { h, field, alertBox, ms, when, toLocalInput, fromLocalInput, setFieldError, replace } from '../dom.js';
import { get, message, fieldErrors } from '../api.js';

export const title = 'Search';

const FILTERS = ['from', 'to', 'department', 'participant_id', 'session_id', 'sort'];

export async function render(main, ctx) {
  const q = ctx.query;
  const inputs = {
    q: h('input', { type: 'search', name: 'q', value: q.get('q') || '', autocomplete: 'off', spellcheck: 'false' }),
    from: h('input', { type: 'datetime-local', name: 'from', value: toLocalInput(q.get('from')) }),
    to: h('input', { type: 'datetime-local', name: 'to', value: toLocalInput(q.get('to')) }),
    department: h('input', { type: 'text', name: 'department', value: q.get('department') || '' }),
    participant_id: h('input', { type: 'text', name: 'participant_id', value: q.get('participant_id') || '', spellcheck: 'false' }),
    session_id: h('input', { type: 'text', name: 'session_id', value: q.get('session_id') || '', spellcheck: 'false' }),
    sort: h('select', { name: 'sort' },
      h('option', { value: '' }, 'Relevance'),
      h('option', { value: 'time' }, 'Newest first'),
      h('option', { value: 'time_asc' }, 'Oldest first')),
  };
  inputs.sort.value = q.get('sort') || '';
  if (ctx.me.role === 'supervisor') {
    inputs.department.value = ctx.me.department;
    inputs.department.readOnly = true;
  }
  const qField = field('Search transcripts', inputs.q,
    'Words, "quoted phrases", -exclusion, OR (capitals), (grouping). Example: "cancel my account" -refund');
  const qRow = h('div', { class: 'q' });
  inputs.q.before(qRow);
  qRow.append(inputs.q, h('button', { type: 'submit', id: 'search-submit' }, 'Search'));
  const form = h('form', { class: 'search-form', role: 'search' },
    qField,
    h('fieldset', null, h('legend', null, 'Filters'),
      h('div', { class: 'row' },
        field('From', inputs.from), field('To', inputs.to),
        field('Department', inputs.department, ctx.me.role === 'supervisor' ? 'Your department' : null),
        field('Participant id', inputs.participant_id), field('Session id', inputs.session_id),
        field('Sort', inputs.sort))));
  const results = h('section', { 'aria-labelledby': 'results-title', 'aria-live': 'polite', 'aria-busy': 'false' });
  main.append(h('h1', null, 'Search'), form, results);

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    const text = inputs.q.value.trim();
    if (!text) { setFieldError(inputs.q, 'Type words or a "phrase" to search for.'); inputs.q.focus(); return; }
    p.set('q', text);
    for (const k of FILTERS) {
      let v = inputs[k].value.trim();
      if (k === 'from' || k === 'to') v = fromLocalInput(v);
      if (k === 'department' && ctx.me.role === 'supervisor') v = '';
      if (v) p.set(k, v);
    }
    ctx.navigate(`/search?${p}`);
  });

  if (!q.get('q')) {
    results.append(h('p', { class: 'muted' }, 'Search what was said in the recordings you may read. Results open the session at the moment of the match.'));
    inputs.q.focus();
    return;
  }
  const params = { q: q.get('q'), limit: 20 };
  for (const k of FILTERS) if (q.get(k)) params[k] = q.get(k);
  const list = h('ol', { class: 'hits', id: 'hits' });
  const more = h('div', { class: 'actions' });
  const summary = h('p', { id: 'results-title' });
  results.append(summary, list, more);

  async function page(cursor) {
    results.setAttribute('aria-busy', 'true');
    let res;
    try {
      res = await get('/v1/search', cursor ? { ...params, cursor } : params);
    } catch (err) {
      results.setAttribute('aria-busy', 'false');
      const fe = fieldErrors(err);
      for (const [k, reason] of Object.entries(fe)) if (inputs[k]) setFieldError(inputs[k], reason);
      summary.replaceWith(alertBox('error', message(err, 'search transcripts', ctx.me)));
      return;
    }
    results.setAttribute('aria-busy', 'false');
    summary.textContent = res.total === 1 ? '1 recording matches' : `${res.total} recordings match`;
    for (const hit of res.hits) list.append(hitItem(hit));
    replace(more, res.next_cursor ? h('button', { type: 'button', class: 'secondary', on: { click: () => page(res.next_cursor) } }, 'More results') : null);
  }
  await page('');
}

// hitItem renders one hit; the link opens the session at the hit with its
// recording's player positioned there.
function hitItem(hit) {
  const href = (offsetMS) => `/sessions/${encodeURIComponent(hit.session_id)}?rec=${encodeURIComponent(hit.recording_id)}&t=${offsetMS}`;
  const offset = hit.media_offset_ms;
  const li = h('li', null,
    h('a', { class: 'hit', href: href(offset), 'data-nav': true, dataset: { rec: hit.recording_id, offset: String(offset) } },
      h('div', { class: 'hit-head' },
        h('span', { class: 'speaker' }, hit.speaker || hit.participant_id),
        h('span', null, 'at ', h('strong', null, ms(offset)), ' in the recording'),
        h('span', null, 'session ', h('code', null, hit.session_id)),
        hit.department ? h('span', null, hit.department) : null,
        h('span', null, when(hit.recorded_at))),
      h('p', { class: 'snippet' }, highlighted(hit.snippet, hit.highlights))));
  const others = (hit.moments || []).filter((m) => m.start_ms !== hit.start_ms);
  if (others.length) {
    const shift = hit.start_ms - offset; // session clock → media time
    li.append(h('div', { class: 'moments' }, 'Also at',
      others.map((m) => h('a', { href: href(Math.max(0, m.start_ms - shift)), 'data-nav': true }, ms(m.start_ms - shift, false)))));
  }
  return li;
}

// highlighted builds the snippet as text nodes with <mark> elements at the
// highlight ranges (Unicode code point offsets): no HTML is parsed.
function highlighted(text, ranges) {
  const cps = Array.from(text || '');
  const out = [];
  let at = 0;
  for (const r of [...(ranges || [])].sort((a, b) => a.start - b.start)) {
    const s = Math.max(r.start, at), e = Math.min(r.end, cps.length);
    if (e <= s) continue;
    if (s > at) out.push(cps.slice(at, s).join(''));
    out.push(h('mark', null, cps.slice(s, e).join('')));
    at = e;
  }
  if (at < cps.length) out.push(cps.slice(at).join(''));
  return out;
}
