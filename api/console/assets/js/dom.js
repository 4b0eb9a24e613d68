// DOM helpers. Nothing here (or anywhere in the console) parses HTML from
// strings: text from the API always becomes text nodes, and the page's
// Content-Security-Policy enforces Trusted Types with no policy, so
// assigning a string to an HTML sink would throw.

// h creates an element. props: class, text, on: {event: fn}, dataset,
// and any other attribute (false/null/undefined ones are left out).
// Children may be strings, numbers, nodes, arrays, or null/false (skipped).
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'hidden' || k === 'required') el[k] = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace empties el and appends the children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ms formats milliseconds of media or session time as m:ss.t (or h:mm:ss).
export function ms(v, tenths = true) {
  v = Math.max(0, Math.round(v || 0));
  const h = Math.floor(v / 3600000), m = Math.floor(v / 60000) % 60, s = Math.floor(v / 1000) % 60;
  const t = Math.floor(v / 100) % 10;
  const ss = String(s).padStart(2, '0') + (tenths ? '.' + t : '');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

// when formats an RFC 3339 time in the browser's time zone.
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// clock formats an RFC 3339 time as a time of day (the date is in when).
export function clock(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// bytes formats a size.
export function bytes(n) {
  if (n == null) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

// localInput turns an RFC 3339 time into a datetime-local value, and back.
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
export function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString();
}

// ids splits a list of ids typed with commas, spaces or new lines.
export function ids(text) {
  return [...new Set(String(text || '').split(/[\s,]+/).map((s) => s.trim()).filter(Boolean))];
}

// announce tells screen readers (and sighted users, briefly) about a change.
let announceTimer;
export function announce(msg) {
  const el = document.getElementById('status');
  if (!el) return;
  el.textContent = msg;
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => { el.textContent = ''; }, 5000);
}

// alert builds a message box; kind: error | ok | info | warn.
export function alertBox(kind, ...children) {
  return h('div', { class: `alert ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

// field builds a labelled input with an optional hint and an error slot.
let fieldSeq = 0;
export function field(labelText, input, hint) {
  const id = input.id || `f${++fieldSeq}`;
  input.id = id;
  const err = h('p', { class: 'field-error', id: `${id}-err`, hidden: true });
  const describedBy = [hint ? `${id}-hint` : null, `${id}-err`].filter(Boolean).join(' ');
  input.setAttribute('aria-describedby', describedBy);
  return h('div', { class: 'field' },
    h('label', { for: id }, labelText),
    input,
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    err);
}

// setFieldError shows (or clears, with msg empty) the error of an input
// made with field.
export function setFieldError(input, msg) {
  const err = document.getElementById(`${input.id}-err`);
  if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  if (err) { err.textContent = msg || ''; err.hidden = !msg; }
}

// badge is a small coloured status label.
export function badge(text, kind = 'neutral') {
  return h('span', { class: `badge ${kind}` }, text);
}

// confirmDialog asks a yes/no question in a modal <dialog>; resolves true
// when confirmed. Focus returns to where it was.
export function confirmDialog(title, body, confirmLabel = 'Confirm', danger = false) {
  return new Promise((resolve) => {
    const back = document.activeElement;
    const ok = h('button', { type: 'submit', value: 'yes', class: danger ? 'danger' : null }, confirmLabel);
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'dlg-title' }, title),
        h('p', null, body),
        h('div', { class: 'actions' }, ok, h('button', { type: 'submit', value: 'no', class: 'secondary' }, 'Cancel'))));
    document.body.appendChild(dlg);
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'yes');
      dlg.remove();
      if (back && back.focus) back.focus();
    });
    dlg.showModal();
    ok.focus();
  });
}
