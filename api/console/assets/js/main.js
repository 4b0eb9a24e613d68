// The console's entry: client-side routes, navigation, the signed-in
// principal (GET /v1/me) and the top bar.
import { h, replace, announce, alertBox } from './dom.js';
import { token, clearToken, finishOIDC } from './auth.js';
import { get, setUnauthorizedHandler, ApiError } from './api.js';
// Pages are loaded when first shown (the first load needs only the
// sign-in page), then all of them while the browser is idle.
const pages = {
  signin: () => import('./pages/signin.js'),
  search: () => import('./pages/search.js'),
  sessions: () => import('./pages/sessions.js'),
  session: () => import('./pages/session.js'),
  holds: () => import('./pages/holds.js'),
  policies: () => import('./pages/policies.js'),
  audit: () => import('./pages/audit.js'),
  exports: () => import('./pages/exports.js'),
};

const routes = [
  { re: /^\/signin$/, page: 'signin', public: true },
  { re: /^\/search$/, page: 'search', nav: 'Search', perm: 'search' },
  { re: /^\/sessions$/, page: 'sessions', nav: 'Sessions', perm: 'sessions:read' },
  { re: /^\/sessions\/([^/]+)$/, page: 'session', section: '/sessions' },
  { re: /^\/holds$/, page: 'holds', nav: 'Legal holds', perm: 'holds:read' },
  { re: /^\/policies$/, page: 'policies', nav: 'Policies', perm: 'policies:read' },
  { re: /^\/audit$/, page: 'audit', nav: 'Audit log', perm: 'audit:read' },
  { re: /^\/exports$/, page: 'exports', nav: 'Exports', perm: 'exports:write' },
];
const navItems = [
  ['/search', 'Search'], ['/sessions', 'Sessions'], ['/holds', 'Legal holds'],
  ['/policies', 'Policies'], ['/audit', 'Audit log'], ['/exports', 'Exports'],
].map(([path, label]) => ({ path, label, perm: routes.find((r) => r.re.test(path)).perm }));

const main = document.getElementById('main');
let me = null; // the signed-in principal (GET /v1/me)
let cleanup = null; // the current page's teardown
let renderSeq = 0;
let firstRender = true;

const can = (perm) => !!me && me.permissions.includes(perm);

// home is the first page a principal may use.
function home() {
  const item = navItems.find((n) => can(n.perm));
  return item ? item.path : '/signin';
}

export function navigate(path, { replace: rep = false } = {}) {
  if (rep) history.replaceState(null, '', path); else history.pushState(null, '', path);
  render();
}

async function loadMe() {
  try {
    me = await get('/v1/me');
  } catch (e) {
    me = null;
    if (e instanceof ApiError && e.status === 401) {
      clearToken();
      return 'Your sign-in is no longer valid (expired or revoked). Sign in again.';
    }
    return `Could not reach the gateway: ${e.message}`;
  }
  return '';
}

function signOut(msg) {
  clearToken();
  me = null;
  navigate(`/signin${msg ? `?reason=${encodeURIComponent(msg)}` : ''}`);
}
setUnauthorizedHandler(() => {
  if (!me) return;
  const next = location.pathname + location.search;
  clearToken();
  me = null;
  navigate(`/signin?next=${encodeURIComponent(next)}&reason=${encodeURIComponent('Your sign-in expired or was revoked. Sign in again.')}`, { replace: true });
});

function renderTop(current) {
  const nav = document.getElementById('nav');
  replace(nav, me ? navItems.filter((n) => can(n.perm)).map((n) =>
    h('a', { href: n.path, 'data-nav': true, 'aria-current': n.path === current ? 'page' : null }, n.label)) : []);
  const who = document.getElementById('who');
  if (!me) { replace(who); return; }
  replace(who,
    h('dl', { 'aria-label': 'Signed in as' },
      h('div', null, h('dt', null, 'Tenant'), h('dd', { id: 'me-tenant' }, me.tenant)),
      h('div', null, h('dt', null, 'Role'), h('dd', { id: 'me-role' }, me.role)),
      h('div', null, h('dt', null, 'Department'), h('dd', { id: 'me-department' }, me.department || 'all'))),
    h('button', { type: 'button', class: 'secondary', id: 'signout', on: { click: () => signOut('You signed out.') } }, 'Sign out'));
  who.title = me.name ? `${me.name} (${me.actor})` : me.actor;
}

async function render() {
  const seq = ++renderSeq;
  if (cleanup) { try { cleanup(); } catch { /* a page's teardown must not block navigation */ } cleanup = null; }
  let path = location.pathname;
  const query = new URLSearchParams(location.search);

  if (path === '/callback') {
    try {
      const next = await finishOIDC();
      const err = await loadMe();
      if (err) throw new Error(err);
      return navigate(next && next !== '/signin' ? next : home(), { replace: true });
    } catch (e) {
      return navigate(`/signin?reason=${encodeURIComponent(`Single sign-on failed: ${e.message}`)}`, { replace: true });
    }
  }
  if (token() && !me) {
    const err = await loadMe();
    if (seq !== renderSeq) return;
    if (err) {
      if (path !== '/signin') return navigate(`/signin?reason=${encodeURIComponent(err)}&next=${encodeURIComponent(path + location.search)}`, { replace: true });
    }
  }
  if (!me && path !== '/signin') {
    const next = path === '/' ? '' : `?next=${encodeURIComponent(path + location.search)}`;
    return navigate(`/signin${next}`, { replace: true });
  }
  if (path === '/') return navigate(home(), { replace: true });
  if (path === '/signin' && me && !query.get('reason')) return navigate(query.get('next') || home(), { replace: true });

  const route = routes.find((r) => r.re.test(path));
  renderTop(route ? (route.section || path) : '');
  main.replaceChildren();
  if (!route) {
    main.append(h('h1', { tabindex: -1 }, 'Page not found'), h('p', null, h('a', { href: home(), 'data-nav': true }, 'Go to the start page')));
    document.title = 'Not found · Custodian';
  } else {
    const ctx = {
      me, can, query, navigate, home,
      params: path.match(route.re).slice(1).map(decodeURIComponent),
      signedIn: async () => { const err = await loadMe(); if (!err) renderTop(''); return err; },
      setTitle: (t) => { document.title = `${t} · Custodian`; },
    };
    try {
      const page = await pages[route.page]();
      if (seq !== renderSeq) return;
      ctx.setTitle(page.title || 'Custodian');
      cleanup = (await page.render(main, ctx)) || null;
    } catch (e) {
      main.append(alertBox('error', `This page failed: ${e.message}`));
    }
  }
  if (seq !== renderSeq) return;
  if (firstRender) {
    firstRender = false;
    performance.mark('console-interactive');
    document.documentElement.dataset.ready = 'true';
    const warm = () => Object.values(pages).forEach((load) => load().catch(() => {}));
    if (window.requestIdleCallback) requestIdleCallback(warm, { timeout: 2000 }); else setTimeout(warm, 500);
  } else {
    // Move focus to the new page's heading so screen readers announce it.
    const h1 = main.querySelector('h1');
    const a = document.activeElement;
    if (h1 && (!a || a === document.body || a === main || !main.contains(a))) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
  }
}

// Same-origin links marked data-nav (and the brand) navigate in place.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[data-nav]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);
window.addEventListener('error', (e) => announce(`Error: ${e.message}`));

render();
