// Shared helpers for Loupe pages: JSON requests that carry the CSRF token.
"use strict";

window.loupe = {
  csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  },

  // Resolves to {ok, status, data} and never throws: an HTTP error or a dropped connection
  // (status 0) comes back as ok=false with a message, so a page never locks up on one.
  async request(url, options) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", ...options });
    } catch (error) {
      return { ok: false, status: 0, data: { detail: "no connection to Loupe; try again" } };
    }
    let data = {};
    try { data = await response.json(); } catch (e) { data = { detail: response.statusText }; }
    return { ok: response.ok, status: response.status, data };
  },

  postJSON(url, body) {
    return loupe.request(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": loupe.csrfToken() },
      body: JSON.stringify(body || {}),
    });
  },

  getJSON(url) {
    return loupe.request(url, {});
  },
};
