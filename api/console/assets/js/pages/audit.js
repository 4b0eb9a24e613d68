// Audit log: the chain verification (GET /v1/audit/verify) with its head
// hash, and the entries (GET /v1/audit), filterable, newest first.
import { h, field, alertBox, when, badge, toLocalInput, fromLocalInput, replace } from '../dom.js';
import { get, message } from '../api.js';

export const title = 'Audit log';

const ACTIONS = ['media.read', 'media.ticket', 'transcript.read', 'search', 'export.create', 'export.download',
  'legalhold.apply', 'legalhold.release', 'policy.update', 'token.create', 'token.revoke', 'recording.delete',
  'retention.delete', 'consent.record', 'session.pause', 'session.resume', 'audit.read', 'audit.verify',
  'auth.reject', 'request.deny', 'keys.rotate'];
const FILTERS = ['actor', 'action', 'target', 'outcome', 'from', 'to'];

export async function render(main, ctx) {
  const q = ctx.query;
  const inputs = {
    actor: h('input', { type: 'text', name: 'actor', value: q.get('actor') || '', spellcheck: 'false', placeholder: 'token:… or oidc:…' }),
    action: h('input', { type: 'text', name: 'action', value: q.get('action') || '', list: 'audit-actions', spellcheck: 'false' }),
    target: h('input', { type: 'text', name: 'target', value: q.get('target') || '', spellcheck: 'false', placeholder: 'session:… recording:… legalhold:…' }),
    outcome: h('select', { name: 'outcome' }, ['', 'success', 'denied', 'error'].map((o) => h('option', { value: o }, o || 'Any'))),
    from: h('input', { type: 'datetime-local', name: 'from', value: toLocalInput(q.get('from')) }),
    to: h('input', { type: 'datetime-local', name: 'to', value: toLocalInput(q.get('to')) }),
  };
  inputs.outcome.value = q.get('outcome') || '';
  const form = h('form', { id: 'audit-filter' },
    h('fieldset', null, h('legend', null, 'Filter entries'),
      h('div', { class: 'row' },
        field('Actor', inputs.actor), field('Action', inputs.action), field('Target', inputs.target),
        field('Outcome', inputs.outcome), field('From', inputs.from), field('To', inputs.to),
        h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Filter')))),
    h('datalist', { id: 'audit-actions' }, ACTIONS.map((a) => h('option', { value: a }))));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const k of FILTERS) {
      let v = inputs[k].value.trim();
      if (k === 'from' || k === 'to') v = fromLocalInput(v);
      if (v) p.set(k, v);
    }
    ctx.navigate(`/audit${p.toString() ? `?${p}` : ''}`);
  });
  const verifyBox = h('section', { class: 'panel', id: 'audit-verify', 'aria-labelledby': 'verify-title', 'aria-live': 'polite' });
  const body = h('tbody');
  const more = h('div', { class: 'actions' });
  const listBox = h('div');
  main.append(h('h1', null, 'Audit log'), verifyBox, form, listBox,
    h('table', { id: 'audit-entries', 'aria-label': 'Audit entries' },
      h('thead', null, h('tr', null, ['#', 'Time', 'Actor', 'Action', 'Target', 'Source', 'Outcome', 'Details'].map((c) => h('th', { scope: 'col' }, c)))),
      body), more);

  const verify = async () => {
    replace(verifyBox, h('h2', { id: 'verify-title' }, 'Chain verification'), h('p', { class: 'muted' }, 'Verifying the hash chain…'));
    let v;
    try {
      v = await get('/v1/audit/verify');
    } catch (err) {
      replace(verifyBox, h('h2', { id: 'verify-title' }, 'Chain verification'), alertBox('error', message(err, 'verify the audit log', ctx.me)));
      return;
    }
    const again = h('button', { type: 'button', class: 'secondary', on: { click: verify } }, 'Verify again');
    replace(verifyBox, h('h2', { id: 'verify-title' }, 'Chain verification'),
      h('div', { class: 'verify' },
        h('span', { class: 'big', id: 'verify-result' }, v.ok ? badge('✓ intact', 'ok') : badge('✗ broken', 'bad')),
        h('span', null, `${v.entries} ${v.entries === 1 ? 'entry' : 'entries'}, ${v.checkpoints} signed checkpoint${v.checkpoints === 1 ? '' : 's'}`), again),
      v.ok ? null : alertBox('error', `First bad entry #${v.first_bad_seq}: ${v.reason}${v.detail ? ` (${v.detail})` : ''}.`),
      h('dl', { class: 'meta' },
        h('dt', null, 'Head'), h('dd', null, `#${v.head_seq}`),
        h('dt', null, 'Head hash'), h('dd', { class: 'hash', id: 'head-hash' }, v.head_hash),
        v.last_checkpoint ? [h('dt', null, 'Last checkpoint'), h('dd', null, `#${v.last_checkpoint.seq}, ${when(v.last_checkpoint.time)}, key ${v.last_checkpoint.key_id}`)] : null,
        v.signing_key ? [h('dt', null, 'Signing key'), h('dd', { class: 'hash' }, `${v.signing_key.key_id} ${v.signing_key.public_key}`)] : null));
  };

  const params = { limit: 100 };
  for (const k of FILTERS) if (q.get(k)) params[k] = q.get(k);
  async function page(cursor) {
    let res;
    try {
      res = await get('/v1/audit', cursor ? { ...params, cursor } : params);
    } catch (err) {
      replace(listBox, alertBox('error', message(err, 'read the audit log', ctx.me)));
      return;
    }
    for (const e of res.entries) body.append(entryRow(e));
    if (!body.children.length) body.append(h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'No entries match.')));
    replace(more, res.next_cursor ? h('button', { type: 'button', class: 'secondary', on: { click: () => page(res.next_cursor) } }, 'Older entries') : null);
  }
  await Promise.all([verify(), page('')]);
}

function entryRow(e) {
  const kind = { success: 'ok', denied: 'bad', error: 'warn' }[e.outcome] || 'neutral';
  const details = e.details && Object.keys(e.details).length
    ? h('details', null, h('summary', null, 'details'), h('pre', null, JSON.stringify(e.details, null, 2)),
      h('div', { class: 'hash muted' }, `hash ${e.hash}`))
    : h('span', { class: 'hash muted', title: `hash ${e.hash}` }, e.hash.slice(0, 12) + '…');
  return h('tr', { dataset: { seq: String(e.seq), action: e.action } },
    h('td', null, String(e.seq)),
    h('td', { class: 'nowrap' }, when(e.time)),
    h('td', { class: 'break' }, e.actor, e.role ? h('div', { class: 'muted' }, e.role) : null),
    h('td', { class: 'nowrap' }, h('code', null, e.action)),
    h('td', { class: 'break' }, e.target || '—'),
    h('td', null, e.source || '—'),
    h('td', null, badge(e.outcome, kind)),
    h('td', null, details));
}
