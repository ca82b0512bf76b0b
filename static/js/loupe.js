// Shared helpers for Loupe pages: JSON requests that carry the CSRF token.
"use strict";

window.loupe = {
  csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  },

  // POST JSON; resolves to {ok, status, data}. Never throws on an HTTP error status,
  // so each page can show the server's message.
  async postJSON(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": loupe.csrfToken() },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { detail: response.statusText }; }
    return { ok: response.ok, status: response.status, data };
  },

  async getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { detail: response.statusText }; }
    return { ok: response.ok, status: response.status, data };
  },
};
