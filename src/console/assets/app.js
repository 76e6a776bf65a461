// Airlock console: live lists (Server-Sent Events), decisions without a reload,
// countdowns and local times. The pages work without it, but for the live parts.
'use strict';

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // "4m 12s left" on every approval, each second.
  function countdowns() {
    const now = Date.now();
    for (const el of $$('[data-expires]')) {
      const left = Math.round((Date.parse(el.dataset.expires) - now) / 1000);
      if (Number.isNaN(left)) continue;
      el.textContent = left <= 0 ? 'expired' : spell(left) + ' left';
      el.classList.toggle('soon', left > 0 && left < 60);
      el.classList.toggle('gone', left <= 0);
    }
  }

  function spell(s) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + String(r).padStart(2, '0') + 's';
    return r + 's';
  }

  // Recorded times in the reader's own zone, the UTC value kept in the title.
  function localTimes(root) {
    for (const el of $$('time[datetime]', root)) {
      if (el.dataset.expires || el.dataset.local) continue;
      const t = new Date(el.getAttribute('datetime'));
      if (Number.isNaN(t.getTime())) continue;
      el.title = el.getAttribute('datetime');
      el.textContent = t.toLocaleString();
      el.dataset.local = '1';
    }
  }

  function toast(text, bad) {
    const el = $('#toast');
    if (!el) return;
    el.textContent = text;
    el.className = bad ? 'show bad' : 'show';
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.className = ''; }, 4000);
  }

  // Approve and deny through fetch: the card goes when the live list says so.
  function bindDecisions(root) {
    for (const form of $$('form.approve, form.deny', root)) {
      if (form.dataset.bound) continue;
      form.dataset.bound = '1';
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const card = form.closest('.request');
        const problem = card && $('.error.decision', card);
        const buttons = card ? $$('button', card) : [];
        buttons.forEach((b) => { b.disabled = true; });
        try {
          const response = await fetch(form.action, {
            method: 'POST',
            body: new URLSearchParams(new FormData(form)),
            headers: { 'X-Requested-With': 'fetch' },
            credentials: 'same-origin',
          });
          const answer = await response.json().catch(() => ({}));
          if (!response.ok) throw new Error(answer.error || ('HTTP ' + response.status));
          toast(answer.message || 'Done');
          if (card) card.classList.add('decided');
        } catch (e) {
          if (problem) { problem.textContent = e.message; problem.hidden = false; }
          buttons.forEach((b) => { b.disabled = false; });
        }
      });
    }
  }

  // An element with data-live follows an event stream: each event replaces its
  // content with what the server rendered.
  function follow(el, status, events) {
    const source = new EventSource(el.dataset.live);
    const state = (s, text) => { if (status) { status.dataset.state = s; status.textContent = text; } };
    source.addEventListener('open', () => state('live', 'live'));
    source.addEventListener('error', () => {
      state(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting', source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting…');
    });
    for (const name of events) {
      source.addEventListener(name, (event) => {
        // Server-rendered markup from this origin: every recorded value in it is escaped.
        el.innerHTML = event.data;
        refresh(el);
        if (name === 'ended') {
          source.close();
          state('closed', 'ended');
        }
      });
    }
  }

  function refresh(root) {
    bindDecisions(root);
    localTimes(root);
    countdowns();
    document.dispatchEvent(new CustomEvent('airlock:updated', { detail: root }));
  }

  document.addEventListener('DOMContentLoaded', () => {
    refresh(document);
    setInterval(countdowns, 1000);
    const pending = $('#pending[data-live]');
    if (pending) follow(pending, $('#live-status'), ['pending']);
    const transcript = $('#transcript[data-live]');
    if (transcript) follow(transcript, $('#replay-live'), ['transcript', 'ended']);
  });
})();
