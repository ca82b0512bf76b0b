// The labeling queue, keyboard first. On /labeling/: Enter or N claims the most urgent item
// and opens it in the box editor. In the editor's queue mode (?queue=1): N or Ctrl+S saves and
// opens the next claimed item, X skips the item (back to the queue for others), Q goes back.
// The claim is kept alive while the labeler is active and released when they leave.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function typing(event) {
    return event.target.closest && event.target.closest("input, textarea, select");
  }

  function plainKey(event) {
    return !(event.ctrlKey || event.metaKey || event.altKey || event.repeat) && !typing(event);
  }

  function showStatus(text, isError) {
    const status = $("queue-status") || $("annotate-status");
    if (!status) return;
    status.textContent = text || "";
    status.className = isError ? "status error" : "status";
  }

  // Claim the next entry and open it; with none left, go to `emptyUrl` (or say so here).
  let claiming = false;
  async function openNext(claimUrl, line, emptyUrl) {
    if (claiming) return;
    claiming = true;
    const result = await loupe.postJSON(claimUrl, line ? { line: Number(line) } : {});
    claiming = false;
    if (!result.ok) { showStatus(result.data.detail || "could not fetch the next item", true); return; }
    if (result.data.entry) { window.location.assign(result.data.entry.label_url); return; }
    if (emptyUrl) { window.location.assign(emptyUrl); return; }
    showStatus("Nothing to label: the queue is empty.");
    if ($("queue-left")) $("queue-left").textContent = String(result.data.progress.left);
  }

  // --- /labeling/ ------------------------------------------------------------------------------

  function queuePage(root) {
    const start = () => openNext(root.dataset.claimUrl, root.dataset.line, null);
    $("queue-start").addEventListener("click", start);
    document.addEventListener("keydown", (event) => {
      if (!plainKey(event)) return;
      if (event.key === "Enter" || event.key.toLowerCase() === "n") { event.preventDefault(); start(); }
    });
  }

  // --- the editor's queue mode -----------------------------------------------------------------

  function editorQueueMode(root, config) {
    const post = (url) => loupe.postJSON(url, {});
    let leaving = false;
    const next = () => { leaving = true; openNext(config.claim_url, config.line, config.queue_url); };

    root.addEventListener("annotate:saved", next);
    const skip = async () => {
      const result = await post(config.skip_url);
      if (!result.ok) { showStatus(result.data.detail || "could not skip the item", true); return; }
      root.dispatchEvent(new CustomEvent("annotate:discard"));
      next();
    };
    const back = () => { window.location.assign(config.queue_url); };
    $("queue-next").addEventListener("click", () => root.dispatchEvent(new CustomEvent("annotate:save")));
    $("queue-skip").addEventListener("click", skip);
    document.addEventListener("keydown", (event) => {
      if (!plainKey(event)) return;
      const key = event.key.toLowerCase();
      if (key === "n") { event.preventDefault(); root.dispatchEvent(new CustomEvent("annotate:save")); }
      else if (key === "x") { event.preventDefault(); skip(); }
      else if (key === "q") { event.preventDefault(); back(); }
    });

    // A claim lapses after minutes without activity: it is kept only while the labeler
    // presses keys or moves the mouse, so a tab left open gives its item back to the queue.
    if (!config.holds) return;
    post(config.keep_url);  // a reloaded page takes back its own lapsed claim
    let activeSince = Date.now();
    for (const type of ["keydown", "pointermove", "pointerdown"]) {
      document.addEventListener(type, () => { activeSince = Date.now(); }, { passive: true });
    }
    setInterval(() => {
      if (Date.now() - activeSince <= config.keep_every_s * 1000) {
        loupe.postJSON(config.keep_url, {}, { background: true });
      }
    }, config.keep_every_s * 1000);
    window.addEventListener("pagehide", () => {
      if (leaving) return;  // saved (the entry is done) or skipped (released already)
      fetch(config.release_url, {
        method: "POST", keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": loupe.csrfToken() },
        body: "{}",
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = $("labeling-queue");
    if (page) queuePage(page);
    const editor = document.querySelector("[data-annotate]");
    if (editor) {
      const data = JSON.parse(document.getElementById(editor.dataset.annotate).textContent);
      if (data.queue) editorQueueMode(editor, data.queue);
    }
  });
})();
