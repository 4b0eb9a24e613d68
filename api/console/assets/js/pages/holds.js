// Legal holds: list, place, release (POST/GET/DELETE /v1/legal-holds).
// The API decides who may do what; its 403 answers become messages.
import { h, field, alertBox, when, badge, ids, announce, setFieldError, confirmDialog, replace } from '../dom.js';
import { get, send, message, fieldErrors } from '../api.js';

export const title = 'Legal holds';

export async function render(main, ctx) {
  const listBox = h('div');
  const formBox = h('div');
  const status = h('select', { id: 'hold-status', name: 'status' },
    h('option', { value: 'active' }, 'Active'), h('option', { value: 'released' }, 'Released'), h('option', { value: '' }, 'All'));
  status.value = ctx.query.has('status') ? ctx.query.get('status') : 'active';
  status.addEventListener('change', () => ctx.navigate(`/holds?status=${encodeURIComponent(status.value)}`, { replace: true }));
  main.append(h('h1', null, 'Legal holds'),
    h('p', { class: 'muted' }, 'A legal hold keeps every recording and transcript of the named sessions and participants from deletion, including recordings made later, until it is released.'),
    h('div', { class: 'grid2' },
      h('section', { 'aria-labelledby': 'holds-list-title' },
        h('div', { class: 'rec-head' }, h('h2', { id: 'holds-list-title' }, 'Holds'), h('div', { class: 'row' }, field('Show', status))),
        listBox),
      h('section', { 'aria-labelledby': 'hold-new-title' }, h('h2', { id: 'hold-new-title' }, 'Place a hold'), formBox)));

  const reload = () => list(listBox, ctx, status.value, reload);
  formBox.append(createForm(ctx, reload));
  await reload();
}

async function list(box, ctx, status, reload) {
  let holds = [], cursor = '';
  try {
    do {
      const res = await get('/v1/legal-holds', { status, limit: 200, cursor });
      holds = holds.concat(res.holds);
      cursor = res.next_cursor || '';
    } while (cursor && holds.length < 1000);
  } catch (err) {
    replace(box, alertBox('error', message(err, 'see legal holds', ctx.me)));
    return;
  }
  if (!holds.length) { replace(box, h('p', { class: 'muted', id: 'holds-empty' }, status === 'active' ? 'No active holds.' : 'No holds.')); return; }
  replace(box, h('table', { id: 'holds', 'aria-label': 'Legal holds' },
    h('thead', null, h('tr', null, ['Hold', 'Covers', 'Status', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, holds.map((hold) => row(hold, ctx, reload)))));
}

function row(hold, ctx, reload) {
  const covers = [
    hold.session_ids.length ? h('div', null, 'Sessions: ', hold.session_ids.map((s, i) => [i ? ', ' : '', h('a', { href: `/sessions/${encodeURIComponent(s)}`, 'data-nav': true }, s)])) : null,
    hold.participant_ids.length ? h('div', null, 'Participants: ', h('code', null, hold.participant_ids.join(', '))) : null,
  ];
  const msg = h('div');
  let release = null;
  if (hold.status === 'active') {
    release = h('button', { type: 'button', class: 'danger', dataset: { hold: hold.id }, 'aria-label': `Release hold ${hold.name}` }, 'Release');
    release.addEventListener('click', async () => {
      const ok = await confirmDialog('Release this legal hold?',
        `“${hold.name}” stops protecting its recordings; those past their retention are deleted at the next retention sweep.`, 'Release hold', true);
      if (!ok) return;
      release.disabled = true;
      try {
        await send('DELETE', `/v1/legal-holds/${encodeURIComponent(hold.id)}`);
        announce(`Hold “${hold.name}” released.`);
        await reload();
      } catch (err) {
        release.disabled = false;
        replace(msg, alertBox('error', message(err, 'release legal holds', ctx.me)));
      }
    });
  }
  return h('tr', { dataset: { hold: hold.id } },
    h('td', null, h('strong', null, hold.name), h('div', { class: 'muted' }, hold.reason),
      h('div', { class: 'muted' }, `placed ${when(hold.created_at)} by ${hold.created_by}`),
      hold.released_at ? h('div', { class: 'muted' }, `released ${when(hold.released_at)} by ${hold.released_by}`) : null),
    h('td', null, covers),
    h('td', null, badge(hold.status, hold.status === 'active' ? 'warn' : 'neutral')),
    h('td', null, release, msg));
}

function createForm(ctx, reload) {
  const inputs = {
    name: h('input', { type: 'text', name: 'name', maxlength: 200, required: true, autocomplete: 'off' }),
    reason: h('textarea', { name: 'reason', rows: 3, maxlength: 4000, required: true }),
    session_ids: h('textarea', { name: 'session_ids', rows: 2, spellcheck: 'false', value: ctx.query.get('session') || '' }),
    participant_ids: h('textarea', { name: 'participant_ids', rows: 2, spellcheck: 'false' }),
  };
  const result = h('div', { id: 'hold-result' });
  const submit = h('button', { type: 'submit', id: 'hold-submit' }, 'Place hold');
  const form = h('form', { class: 'panel', id: 'hold-form', novalidate: true },
    ctx.can('holds:write') ? null : alertBox('info', `Your role (${ctx.me.role}) does not place legal holds; the API will refuse.`),
    field('Name', inputs.name, 'The matter, e.g. “SEC inquiry 2026-17”.'),
    field('Reason', inputs.reason, 'The order or request the hold serves.'),
    field('Session ids', inputs.session_ids, 'Separated by commas, spaces or lines.'),
    field('Participant ids', inputs.participant_ids, 'Holds the participant’s recordings in every session.'),
    h('div', { class: 'actions' }, submit), result);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const el of Object.values(inputs)) setFieldError(el, '');
    const body = {
      name: inputs.name.value.trim(), reason: inputs.reason.value.trim(),
      session_ids: ids(inputs.session_ids.value), participant_ids: ids(inputs.participant_ids.value),
    };
    let bad = false;
    if (!body.name) { setFieldError(inputs.name, 'A name is required.'); bad = true; }
    if (!body.reason) { setFieldError(inputs.reason, 'A reason is required.'); bad = true; }
    if (!body.session_ids.length && !body.participant_ids.length) { setFieldError(inputs.session_ids, 'Name at least one session or participant.'); bad = true; }
    if (bad) { form.querySelector('[aria-invalid=true]').focus(); return; }
    submit.disabled = true;
    replace(result);
    try {
      const hold = await send('POST', '/v1/legal-holds', body);
      const kept = hold.recordings ? hold.recordings.kept : 0;
      const deleted = hold.recordings ? hold.recordings.deleted : 0;
      replace(result, alertBox('ok', `Hold “${hold.name}” placed (${hold.id}): it keeps ${kept} recording(s).`,
        deleted ? ` ${deleted} named recording(s) were already deleted and cannot be brought back.` : ''));
      for (const el of Object.values(inputs)) el.value = '';
      await reload();
    } catch (err) {
      const fe = fieldErrors(err);
      let shown = false;
      for (const [k, reason] of Object.entries(fe)) {
        const key = k.replace(/\[\d+\]$/, '');
        if (inputs[key]) { setFieldError(inputs[key], reason); shown = true; }
      }
      replace(result, alertBox('error', message(err, 'place legal holds', ctx.me)));
      if (shown) form.querySelector('[aria-invalid=true]').focus();
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
