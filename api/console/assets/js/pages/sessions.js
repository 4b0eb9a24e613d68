// Sessions: the sessions the caller may see, newest first.
import { h, field, alertBox, when, badge, replace } from '../dom.js';
import { get, message } from '../api.js';

export const title = 'Sessions';

export function recordingStatusBadge(s) {
  const kind = { recording: 'ok', not_recording: 'neutral', failed: 'bad' }[s] || 'neutral';
  return badge(String(s || 'unknown').replace('_', ' '), kind);
}

export async function render(main, ctx) {
  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'Any'), h('option', { value: 'active' }, 'Active'), h('option', { value: 'ended' }, 'Ended'));
  status.value = ctx.query.get('status') || '';
  const dept = h('input', { type: 'text', name: 'department', value: ctx.query.get('department') || '' });
  const form = h('form', { class: 'row' }, field('Status', status), field('Department', dept),
    h('div', { class: 'field' }, h('button', { type: 'submit' }, 'Filter')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (status.value) p.set('status', status.value);
    if (dept.value.trim()) p.set('department', dept.value.trim());
    ctx.navigate(`/sessions${p.toString() ? `?${p}` : ''}`);
  });
  const body = h('tbody');
  const more = h('div', { class: 'actions' });
  const box = h('div');
  main.append(h('h1', null, 'Sessions'), form, box,
    h('table', { 'aria-label': 'Sessions' },
      h('thead', null, h('tr', null, ['Session', 'Department', 'Status', 'Recording', 'Started', 'Ended'].map((c) => h('th', { scope: 'col' }, c)))),
      body), more);
  const params = { limit: 50, status: status.value, department: dept.value.trim() };
  async function page(cursor) {
    let res;
    try {
      res = await get('/v1/sessions', cursor ? { ...params, cursor } : params);
    } catch (err) {
      box.replaceChildren(alertBox('error', message(err, 'list sessions', ctx.me)));
      return;
    }
    for (const s of res.items) {
      body.append(h('tr', null,
        h('td', null, h('a', { href: `/sessions/${encodeURIComponent(s.id)}`, 'data-nav': true }, s.id)),
        h('td', null, s.department || '—'),
        h('td', null, badge(s.status, s.status === 'active' ? 'ok' : 'neutral')),
        h('td', null, recordingStatusBadge(s.recording_status)),
        h('td', { class: 'nowrap' }, when(s.started_at)),
        h('td', { class: 'nowrap' }, when(s.ended_at))));
    }
    if (!body.children.length) body.append(h('tr', null, h('td', { colspan: 6, class: 'muted' }, 'No sessions.')));
    replace(more, res.next_cursor ? h('button', { type: 'button', class: 'secondary', on: { click: () => page(res.next_cursor) } }, 'More sessions') : null);
  }
  await page('');
}
