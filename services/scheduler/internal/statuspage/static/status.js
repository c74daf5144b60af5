// Refreshes the status page: every data-refresh seconds it fetches
// /status.html (the same template's fragment, with the session cookie) and
// replaces the content of <main>. A 401 (the session ended) reloads the page,
// which shows the login form. No framework, no inline script (the page's
// Content-Security-Policy forbids it).
(function () {
  'use strict';
  const main = document.getElementById('status');
  if (!main) {
    return;
  }
  const every = (parseInt(main.dataset.refresh, 10) || 5) * 1000;
  async function refresh() {
    try {
      const r = await fetch('/status.html', { credentials: 'same-origin', cache: 'no-store' });
      if (r.status === 401) {
        location.reload();
        return;
      }
      if (!r.ok) {
        throw new Error('status ' + r.status);
      }
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      main.replaceChildren(...doc.body.childNodes);
      main.removeAttribute('data-stale');
    } catch (e) {
      main.setAttribute('data-stale', 'true');
    }
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
