// Exports: start an eDiscovery export encrypted to an age recipient
// (POST /v1/exports), follow its progress, download the bundle.
import { h, field, alertBox, when, bytes, ids, announce, setFieldError, fromLocalInput, replace, badge } from '../dom.js';
import { get, send, request, message, fieldErrors } from '../api.js';

export const title = 'Exports';

const KEY = 'custodian.exports'; // export ids started or opened in this tab
const AGE = /^age1(pq1)?[02-9ac-hj-np-z]{20,}$/;

function remembered() { try { return JSON.parse(sessionStorage.getItem(KEY) || '[]'); } catch { return []; } }
function remember(id) { sessionStorage.setItem(KEY, JSON.stringify([id, ...remembered().filter((x) => x !== id)].slice(0, 20))); }

export async function render(main, ctx) {
  const timers = new Set();
  const listBox = h('div', { id: 'exports' });
  main.append(h('h1', null, 'Exports'),
    h('p', { class: 'muted' }, 'An export is a zip of the decrypted recordings, their transcripts and completeness reports, with a manifest signed by the gateway, encrypted to the recipient’s age public key. Only the holder of the matching identity can open it; check it with ',
      h('code', null, 'custodian export verify BUNDLE --identity KEYFILE'), '.'),
    h('div', { class: 'grid2' },
      h('section', { 'aria-labelledby': 'export-new-title' }, h('h2', { id: 'export-new-title' }, 'New export'), createForm(ctx, (e) => { remember(e.id); track(e); })),
      h('section', { 'aria-labelledby': 'export-list-title' }, h('h2', { id: 'export-list-title' }, 'Exports from this tab'), lookupForm(ctx, (e) => { remember(e.id); track(e); }), listBox)));

  const rows = new Map();
  function track(e) {
    let row = rows.get(e.id);
    if (!row) {
      row = h('div', { class: 'panel', dataset: { export: e.id } });
      if (!rows.size) listBox.replaceChildren();
      rows.set(e.id, row);
      listBox.prepend(row);
    }
    draw(row, e, ctx);
    if (e.status === 'pending' || e.status === 'running') {
      const t = setTimeout(async () => {
        timers.delete(t);
        try { track(await get(`/v1/exports/${encodeURIComponent(e.id)}`)); } catch (err) { row.append(alertBox('error', message(err, 'follow this export', ctx.me))); }
      }, 1000);
      timers.add(t);
    } else if (e.status === 'complete') {
      announce(`Export ${e.name || e.id} is ready to download.`);
    }
  }
  await Promise.all(remembered().map(async (id) => {
    try { track(await get(`/v1/exports/${encodeURIComponent(id)}`)); } catch { /* gone or not ours: forget it */ }
  }));
  if (!rows.size) listBox.append(h('p', { class: 'muted' }, 'None yet.'));
  return () => { for (const t of timers) clearTimeout(t); };
}

function draw(row, e, ctx) {
  const kind = { complete: 'ok', failed: 'bad', running: 'warn', pending: 'neutral' }[e.status] || 'neutral';
  const dl = h('div');
  let button = null;
  if (e.status === 'complete') {
    button = h('button', { type: 'button', dataset: { export: e.id } }, `Download (${bytes(e.size)})`);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const resp = await request(`/v1/exports/${encodeURIComponent(e.id)}/download`, { headers: { Accept: 'application/octet-stream' } });
        const blob = await resp.blob();
        const url = URL.createObjectURL(blob);
        const a = h('a', { href: url, download: `${e.id}.zip.age` });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        replace(dl, alertBox('ok', `Downloaded ${bytes(blob.size)}.`));
      } catch (err) {
        replace(dl, alertBox('error', message(err, 'download exports', ctx.me)));
      } finally {
        button.disabled = false;
      }
    });
  }
  replace(row,
    h('div', { class: 'rec-head' }, h('h3', null, e.name || e.id), badge(e.status, kind)),
    h('dl', { class: 'meta' },
      h('dt', null, 'Id'), h('dd', null, h('code', null, e.id)),
      h('dt', null, 'Progress'), h('dd', null, h('progress', { max: 1, value: e.progress || 0, 'aria-label': `Progress of ${e.name || e.id}` }), ` ${Math.round(100 * (e.progress || 0))} %`),
      h('dt', null, 'Recordings'), h('dd', null, String(e.recordings)),
      h('dt', null, 'Recipient'), h('dd', { class: 'hash' }, e.recipient),
      h('dt', null, 'Created'), h('dd', null, `${when(e.created_at)} by ${e.created_by}`),
      e.completed_at ? [h('dt', null, 'Completed'), h('dd', null, when(e.completed_at))] : null,
      e.sha256 ? [h('dt', null, 'SHA-256'), h('dd', { class: 'hash' }, e.sha256)] : null,
      e.signing_key ? [h('dt', null, 'Signed by'), h('dd', { class: 'hash' }, `${e.signing_key.key_id} ${e.signing_key.public_key}`)] : null,
      e.error ? [h('dt', null, 'Error'), h('dd', null, e.error)] : null),
    button ? h('div', { class: 'actions' }, button) : null, dl);
}

function createForm(ctx, started) {
  const inputs = {
    recipient: h('input', { type: 'text', name: 'recipient', spellcheck: 'false', autocomplete: 'off', placeholder: 'age1…' }),
    name: h('input', { type: 'text', name: 'name', maxlength: 200 }),
    session_ids: h('textarea', { name: 'session_ids', rows: 2, spellcheck: 'false', value: ctx.query.get('session') || '' }),
    department: h('input', { type: 'text', name: 'department' }),
    participant_id: h('input', { type: 'text', name: 'participant_id', spellcheck: 'false' }),
    from: h('input', { type: 'datetime-local', name: 'from' }),
    to: h('input', { type: 'datetime-local', name: 'to' }),
  };
  const result = h('div', { id: 'export-result' });
  const submit = h('button', { type: 'submit', id: 'export-submit' }, 'Start export');
  const form = h('form', { class: 'panel', id: 'export-form', novalidate: true },
    field('Recipient (age public key)', inputs.recipient, ['age1… (X25519) or age1pq1… (hybrid). Make one with ', h('code', null, 'age-keygen -o key.txt'), '.']),
    field('Name', inputs.name),
    field('Session ids', inputs.session_ids, 'Export these sessions, or leave empty and use the filters below.'),
    h('fieldset', null, h('legend', null, 'Or select by filters'),
      h('div', { class: 'row' }, field('Department', inputs.department), field('Participant id', inputs.participant_id)),
      h('div', { class: 'row' }, field('Recorded from', inputs.from), field('Recorded before', inputs.to))),
    h('div', { class: 'actions' }, submit), result);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const el of Object.values(inputs)) setFieldError(el, '');
    replace(result);
    const recipient = inputs.recipient.value.trim();
    if (!AGE.test(recipient)) { setFieldError(inputs.recipient, 'Not an age public key (age1…).'); inputs.recipient.focus(); return; }
    const body = { recipient };
    if (inputs.name.value.trim()) body.name = inputs.name.value.trim();
    const sessions = ids(inputs.session_ids.value);
    const filters = {};
    if (inputs.department.value.trim()) filters.department = inputs.department.value.trim();
    if (inputs.participant_id.value.trim()) filters.participant_id = inputs.participant_id.value.trim();
    if (inputs.from.value) filters.from = fromLocalInput(inputs.from.value);
    if (inputs.to.value) filters.to = fromLocalInput(inputs.to.value);
    if (sessions.length && Object.keys(filters).length) { setFieldError(inputs.session_ids, 'Give session ids or filters, not both.'); inputs.session_ids.focus(); return; }
    if (sessions.length) body.session_ids = sessions; else if (Object.keys(filters).length) body.filters = filters;
    else { setFieldError(inputs.session_ids, 'Name sessions or set a filter.'); inputs.session_ids.focus(); return; }
    submit.disabled = true;
    try {
      const e = await send('POST', '/v1/exports', body);
      replace(result, alertBox('ok', `Export ${e.id} started with ${e.recordings} recording(s).`));
      started(e);
    } catch (err) {
      for (const [k, reason] of Object.entries(fieldErrors(err))) {
        const key = k.replace(/^filters\./, '').replace(/\[\d+\]$/, '');
        if (inputs[key]) setFieldError(inputs[key], reason);
      }
      replace(result, alertBox('error', message(err, 'start exports', ctx.me)));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function lookupForm(ctx, found) {
  const input = h('input', { type: 'text', name: 'export_id', spellcheck: 'false', placeholder: 'exp_…' });
  const msg = h('div');
  const form = h('form', { class: 'row' }, field('Open an export by id', input), h('div', { class: 'field' }, h('button', { type: 'submit', class: 'secondary' }, 'Open')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = input.value.trim();
    if (!id) return;
    try { found(await get(`/v1/exports/${encodeURIComponent(id)}`)); input.value = ''; replace(msg); } catch (err) { replace(msg, alertBox('error', message(err, 'read exports', ctx.me))); }
  });
  return h('div', null, form, msg);
}
