// Policies: the document in force (GET /v1/policies) with its warnings;
// admins edit it (PUT, YAML, If-Match) and see validation errors at
// their line.
import { h, alertBox, when, announce, replace } from '../dom.js';
import { get, request, message, ApiError } from '../api.js';

export const title = 'Policies';

const LINE_PX = 20; // --line-h in console.css
const PAD_PX = 8; // the editor's top padding

export async function render(main, ctx) {
  main.append(h('h1', null, 'Policies'));
  let doc;
  try {
    doc = await get('/v1/policies');
  } catch (err) {
    main.append(alertBox('error', message(err, 'read policies', ctx.me)));
    return;
  }
  const canEdit = ctx.can('policies:write') && doc.scope !== 'tenant';
  const info = h('div');
  const result = h('div', { id: 'policy-result' });
  const editor = new Editor(doc.document || '', !canEdit);
  const showInfo = (d) => replace(info, h('div', { class: 'panel' }, h('dl', { class: 'meta' },
    h('dt', null, 'Version'), h('dd', { id: 'policy-version' }, `${d.version}${d.source === 'config' ? ' (from the configuration file)' : ''}`),
    h('dt', null, 'Rules'), h('dd', null, String(d.rules)),
    h('dt', null, 'Default retention'), h('dd', null, d.default_retention || '—'),
    h('dt', null, 'Updated'), h('dd', null, d.updated_at ? `${when(d.updated_at)} by ${d.updated_by}` : '—'),
    h('dt', null, 'SHA-256'), h('dd', { class: 'hash' }, d.sha256 || '—'),
    d.scope === 'tenant' ? [h('dt', null, 'Scope'), h('dd', null, 'the rules that apply to your tenant (the document is managed by the operator tenant)')] : null)));
  showInfo(doc);
  editor.mark([], doc.warnings || []);
  let etag = doc.etag;

  const save = h('button', { type: 'button', id: 'policy-save' }, 'Validate and save');
  const revert = h('button', { type: 'button', class: 'secondary' }, 'Revert');
  revert.addEventListener('click', () => { editor.set(doc.document || ''); editor.mark([], doc.warnings || []); replace(result); });
  save.addEventListener('click', async () => {
    save.disabled = true;
    replace(result);
    try {
      const resp = await request('/v1/policies', {
        method: 'PUT', body: editor.value(),
        headers: { 'Content-Type': 'application/yaml', ...(etag ? { 'If-Match': etag } : {}) },
      });
      doc = await resp.json();
      etag = doc.etag;
      showInfo(doc);
      editor.set(doc.document);
      editor.mark([], doc.warnings || []);
      replace(result, alertBox('ok', `Saved: version ${doc.version} is in force.`,
        doc.warnings && doc.warnings.length ? ` ${doc.warnings.length} warning(s) are marked in the document.` : ''));
      announce(`Policy version ${doc.version} saved.`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 400 && (err.problem.line || (err.problem.errors || []).some((e) => e.line))) {
        const errs = (err.problem.errors && err.problem.errors.length ? err.problem.errors : [err.problem])
          .map((e) => ({ line: e.line, column: e.column, message: [e.rule ? `rule ${e.rule}` : '', e.field, e.reason].filter(Boolean).join(': ') }));
        editor.mark(errs, []);
        replace(result, alertBox('error', 'The document was not saved; the policy in force is unchanged. ',
          h('ul', { id: 'policy-errors' }, errs.map((e) => h('li', null,
            h('button', { type: 'button', class: 'link', on: { click: () => editor.goto(e.line, e.column) } }, `Line ${e.line}${e.column ? `, column ${e.column}` : ''}`),
            `: ${e.message}`)))));
        editor.goto(errs[0].line, errs[0].column);
      } else {
        replace(result, alertBox('error', message(err, 'change policies', ctx.me)));
      }
    } finally {
      save.disabled = false;
    }
  });

  main.append(info,
    canEdit ? h('p', { class: 'muted' }, 'Edit the YAML document and save: it is validated whole, and a document with an error is refused with its line marked here, leaving the policy in force unchanged. See docs/policy.md for the rules.')
      : h('p', { class: 'muted' }, ctx.can('policies:write') ? 'Only the operator tenant edits the policy document.' : 'Only administrators edit policies.'),
    editor.el,
    canEdit ? h('div', { class: 'actions' }, save, revert) : null,
    result);
}

// Editor is a textarea with line numbers and, at their lines, error and
// warning marks: a band behind the line and the message at its right.
class Editor {
  constructor(text, readOnly) {
    this.ta = h('textarea', {
      id: 'policy-text', wrap: 'off', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off',
      'aria-label': 'Policy document (YAML)', 'aria-describedby': 'policy-errors', readonly: readOnly || null,
    });
    this.ta.value = text;
    this.gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
    this.bands = h('div', { class: 'bands' });
    this.overlay = h('div', { class: 'overlay', 'aria-hidden': 'true' });
    this.el = h('div', { class: 'editor' }, this.gutter, h('div', { class: 'code' }, this.bands, this.ta, this.overlay));
    this.marks = [];
    this.ta.addEventListener('input', () => this.lines());
    this.ta.addEventListener('scroll', () => this.scroll());
    this.ta.addEventListener('keydown', (e) => {
      if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.altKey && !readOnly && e.target.selectionStart === e.target.selectionEnd) {
        // Two spaces for indentation; Escape then Tab leaves the editor.
        if (this.escaped) { this.escaped = false; return; }
        e.preventDefault();
        document.execCommand('insertText', false, '  ');
      } else if (e.key === 'Escape') this.escaped = true;
    });
    this.lines();
  }

  value() { return this.ta.value; }
  set(text) { this.ta.value = text; this.lines(); }

  lines() {
    const n = this.ta.value.split('\n').length;
    const byLine = new Map(this.marks.map((m) => [m.line, m.kind]));
    this.gutter.replaceChildren(...Array.from({ length: n }, (_, i) => {
      const kind = byLine.get(i + 1);
      return h('div', { class: kind || null, title: kind ? this.marks.find((m) => m.line === i + 1).message : null }, String(i + 1));
    }));
    this.scroll();
  }

  // mark shows errors and warnings ({line, column, message}).
  mark(errors, warnings) {
    this.marks = [...errors.map((e) => ({ ...e, kind: 'err' })), ...warnings.map((w) => ({ ...w, kind: 'warn' }))].filter((m) => m.line > 0);
    this.bands.replaceChildren();
    this.overlay.replaceChildren();
    for (const m of this.marks) {
      const top = PAD_PX + (m.line - 1) * LINE_PX;
      const band = h('div', { class: `band ${m.kind === 'warn' ? 'warn' : ''}` });
      band.style.top = `${top}px`;
      const msg = h('div', { class: `msg ${m.kind === 'warn' ? 'warn' : ''}`, dataset: { line: String(m.line) } },
        `${m.kind === 'warn' ? 'Warning' : 'Error'}: ${m.message}`);
      msg.style.top = `${top + 1}px`;
      this.bands.append(band);
      this.overlay.append(msg);
    }
    this.ta.setAttribute('aria-invalid', errors.length ? 'true' : 'false');
    this.lines();
  }

  scroll() {
    const y = this.ta.scrollTop;
    this.gutter.scrollTop = y;
    this.bands.style.transform = `translateY(${-y}px)`;
    this.overlay.style.transform = `translateY(${-y}px)`;
  }

  // goto puts the caret at line:column and scrolls it into view.
  goto(line, column) {
    const lines = this.ta.value.split('\n');
    let pos = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) pos += lines[i].length + 1;
    pos += Math.max(0, (column || 1) - 1);
    this.ta.focus();
    this.ta.setSelectionRange(pos, pos);
    const top = PAD_PX + (line - 1) * LINE_PX;
    if (top < this.ta.scrollTop || top > this.ta.scrollTop + this.ta.clientHeight - 2 * LINE_PX) this.ta.scrollTop = Math.max(0, top - this.ta.clientHeight / 3);
    this.scroll();
  }
}
