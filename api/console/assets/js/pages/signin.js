// Sign-in: single sign-on (OIDC, when configured) or a pasted API token.
import { h, field, alertBox, setFieldError } from '../dom.js';
import { setToken, clearToken, oidc, oidcEnabled, startOIDC } from '../auth.js';

export const title = 'Sign in';

export async function render(main, ctx) {
  const reason = ctx.query.get('reason');
  const next = ctx.query.get('next') || '';
  const errBox = h('div');
  const tokenInput = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true });
  const submit = h('button', { type: 'submit', id: 'token-signin' }, 'Sign in with token');
  const form = h('form', { class: 'panel', 'aria-labelledby': 'token-title' },
    h('h2', { id: 'token-title' }, 'API token'),
    field('Bearer token', tokenInput, ['An opaque token (', h('code', null, 'cst_…'), ') from ', h('code', null, 'custodian token create'), ' or ', h('code', null, 'POST /v1/tokens'), '. It is kept in this tab only and forgotten when the tab closes.']),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = tokenInput.value.trim();
    if (!t) { setFieldError(tokenInput, 'Paste a token.'); tokenInput.focus(); return; }
    submit.disabled = true;
    setToken(t);
    const err = await ctx.signedIn();
    submit.disabled = false;
    if (err) {
      clearToken();
      setFieldError(tokenInput, err.includes('no longer valid') ? 'The token is not valid: unknown, expired or revoked.' : err);
      tokenInput.focus();
      return;
    }
    ctx.navigate(next && next.startsWith('/') ? next : ctx.home(), { replace: true });
  });

  let sso = null;
  if (oidcEnabled()) {
    const host = (() => { try { return new URL(oidc.issuer).host; } catch { return oidc.issuer; } })();
    const btn = h('button', { type: 'button', id: 'sso-signin' }, 'Sign in with single sign-on');
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        await startOIDC(next);
      } catch (e) {
        btn.disabled = false;
        errBox.replaceChildren(alertBox('error', `Single sign-on is not available: ${e.message}`));
      }
    });
    sso = [h('section', { class: 'panel', 'aria-labelledby': 'sso-title' },
      h('h2', { id: 'sso-title' }, 'Single sign-on'),
      h('p', { class: 'muted' }, `Continue at your identity provider (${host}).`),
      btn), h('p', { class: 'or' }, 'or')];
  }
  main.append(h('div', { class: 'signin' },
    h('h1', null, 'Sign in to the review console'),
    reason ? alertBox(/signed out/.test(reason) ? 'info' : 'error', reason) : null,
    errBox, sso, form));
  (sso ? main.querySelector('#sso-signin') : tokenInput).focus();
}
