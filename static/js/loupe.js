// Shared helpers for Loupe pages: JSON requests that carry the CSRF token.
"use strict";

window.loupe = {
  csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  },

  // Resolves to {ok, status, data} and never throws: an HTTP error or a dropped connection
  // (status 0) comes back as ok=false with a message, so a page never locks up on one.
  // `background: true` marks a request a timer sends, not a person: it does not keep the
  // session from ending after its idle time (accounts/middleware.py).
  async request(url, options, { background = false } = {}) {
    let response;
    const headers = { ...(options.headers || {}) };
    if (background) headers["X-Loupe-Background"] = "1";
    try {
      response = await fetch(url, { credentials: "same-origin", ...options, headers });
    } catch (error) {
      return { ok: false, status: 0, data: { detail: "no connection to Loupe; try again" } };
    }
    if (response.redirected && new URL(response.url).pathname === "/login/") {
      // the session ended (idle, or logged out elsewhere): show the login page, then come back
      const here = window.location.pathname + window.location.search;
      window.location.assign("/login/?next=" + encodeURIComponent(here));
      return { ok: false, status: 401, data: { detail: "your session ended; log in again" } };
    }
    let data = {};
    try { data = await response.json(); } catch (e) { data = { detail: response.statusText }; }
    return { ok: response.ok, status: response.status, data };
  },

  postJSON(url, body, flags) {
    return loupe.request(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": loupe.csrfToken() },
      body: JSON.stringify(body || {}),
    }, flags);
  },

  getJSON(url, flags) {
    return loupe.request(url, {}, flags);
  },
};

// A filter that applies as soon as it changes (`<select data-submit-on-change>`): here rather
// than in an onchange attribute, which the Content Security Policy refuses as inline script.
document.addEventListener("change", (event) => {
  const field = event.target.closest("[data-submit-on-change]");
  if (field && field.form) field.form.submit();
});
