// Review queue: one item on screen, the next one claimed and its image loaded behind it,
// decisions by button or key (A / R), undo of the last decision (Z) within the window.
"use strict";

(function () {
  const root = document.getElementById("review");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const claimUrl = root.dataset.claimUrl;
  const itemUrl = (id, action) => `${root.dataset.itemUrl}${id}/${action}`;
  const undoWindowMs = Number(root.dataset.undoWindowS) * 1000;
  const keepEveryMs = Number(root.dataset.keepEveryS) * 1000;

  const held = [];       // claimed items; held[0] is on screen, held[1] is prefetched
  let shownAt = 0;       // when held[0]'s image appeared
  let lastDecision = null;  // {item, at}
  let busy = false;
  let decidedHere = 0;
  let claiming = null;

  function status(text, isError) {
    $("status").textContent = text || "";
    $("status").className = isError ? "status error" : "status";
  }

  // Answers can arrive out of order: show the count of the request sent last.
  let sentSeq = 0;
  let shownSeq = 0;
  function setOpenCount(n, seq) {
    if (typeof n !== "number" || seq < shownSeq) return;
    shownSeq = seq;
    $("open-count").textContent = n;
  }

  function fit(item) {
    const maxW = Math.max(200, window.innerWidth - 380);
    const maxH = Math.max(200, window.innerHeight - 150);
    return Math.min(maxW / item.width, maxH / item.height);
  }

  function preload(item) {
    item.image = new Image();
    item.image.src = item.image_url;
  }

  function show() {
    const stage = $("stage");
    stage.querySelectorAll(".region").forEach((el) => el.remove());
    const item = held[0];
    const buttons = [$("accept"), $("reject")];
    if (!item) {
      stage.hidden = true;
      stage.dataset.itemId = "";
      // while the next claim is on its way the queue is not known to be empty
      $("empty").hidden = Boolean(claiming);
      buttons.forEach((b) => { b.disabled = true; });
      ["fact-external", "fact-line", "fact-level", "fact-reason", "fact-model"].forEach((id) => { $(id).textContent = "–"; });
      return;
    }
    $("empty").hidden = true;
    stage.hidden = false;
    stage.dataset.itemId = String(item.id);
    const scale = fit(item);
    const img = $("item-image");
    img.width = Math.round(item.width * scale);
    img.height = Math.round(item.height * scale);
    img.src = item.image_url;
    $("fact-external").textContent = item.external_id;
    $("fact-line").textContent = item.line;
    $("fact-level").textContent = item.level;
    $("fact-reason").textContent = item.reason;
    $("detail-link").href = item.detail_url;
    $("label-link").href = item.label_url;
    if (item.model) {
      $("fact-model").textContent = `p(defect) ${item.model.defect_probability.toFixed(3)} · ${item.model.version}`;
      for (const region of item.model.regions) {
        const box = document.createElement("div");
        box.className = "region";
        box.style.left = `${region.x0 * scale}px`;
        box.style.top = `${region.y0 * scale}px`;
        box.style.width = `${(region.x1 - region.x0) * scale}px`;
        box.style.height = `${(region.y1 - region.y0) * scale}px`;
        const tag = document.createElement("span");
        tag.textContent = `${region.label} ${Math.round(region.score * 100)}%`;
        box.appendChild(tag);
        stage.appendChild(box);
      }
    } else {
      $("fact-model").textContent = item.level === "human_only" ? "not asked" : "hidden for this item";
    }
    shownAt = performance.now();
    buttons.forEach((b) => { b.disabled = false; });
  }

  // Keep one item behind the one on screen, claimed and with its image loaded.
  async function refill(background = false) {
    if (claiming) return claiming;
    claiming = (async () => {
      while (held.length < 2) {
        const seq = ++sentSeq;
        const exclude = held.map((i) => i.id);
        const result = await loupe.postJSON(claimUrl, { exclude }, { background });
        if (!result.ok) { status(result.data.detail || "could not fetch the next item", true); break; }
        setOpenCount(result.data.open_count, seq);
        if (!result.data.item) break;
        // an undo that raced this claim may already have put the item back on screen
        if (held.some((i) => i.id === result.data.item.id)) break;
        preload(result.data.item);
        held.push(result.data.item);
        if (held.length === 1) show();
      }
    })();
    try { await claiming; } finally {
      claiming = null;
      if (held.length === 0) show();
    }
  }

  async function decide(decision) {
    const item = held[0];
    if (!item || busy) return;
    busy = true;
    const timeSpent = Math.round(performance.now() - shownAt);
    const seq = ++sentSeq;
    const sentAt = Date.now();  // the server's decided_at is later: its window outlasts ours
    const result = await loupe.postJSON(itemUrl(item.id, "decide"), { decision, time_spent_ms: timeSpent });
    busy = false;
    if (result.ok) {
      decidedHere += 1;
      $("decided-count").textContent = decidedHere;
      setOpenCount(result.data.open_count, seq);
      lastDecision = { item, at: sentAt };
      status(`${item.external_id}: ${decision}ed`);
      tickUndo();
    } else if (result.status === 409 || result.status === 404) {
      status(`${item.external_id}: ${result.data.detail}; moved on`, true);
    } else {
      status(result.data.detail || "the decision was not saved", true);
      return;  // keep the item on screen so nothing is lost
    }
    held.shift();
    refill();  // first, so the screen shows "loading", not "empty", while it claims
    show();
  }

  async function undo() {
    if (!lastDecision || busy || Date.now() - lastDecision.at > undoWindowMs) return;
    busy = true;
    const seq = ++sentSeq;
    const result = await loupe.postJSON(itemUrl(lastDecision.item.id, "undo"), {});
    busy = false;
    if (!result.ok) { status(result.data.detail, true); lastDecision = null; tickUndo(); return; }
    const item = result.data.item;
    preload(item);
    held.unshift(item);
    decidedHere -= 1;
    $("decided-count").textContent = decidedHere;
    setOpenCount(result.data.open_count, seq);
    lastDecision = null;
    status(`${item.external_id}: decision undone`);
    tickUndo();
    show();
  }

  function tickUndo() {
    const left = lastDecision ? undoWindowMs - (Date.now() - lastDecision.at) : 0;
    $("undo").disabled = left <= 0;
    $("undo-left").textContent = left > 0 ? `(${Math.ceil(left / 1000)} s)` : "";
  }
  setInterval(tickUndo, 250);

  // A claim lapses after minutes without activity: it is kept only while the inspector
  // presses keys or moves the mouse, so a tab left open gives its items back to the queue.
  let activeSince = Date.now();
  for (const type of ["keydown", "pointermove", "pointerdown"]) {
    document.addEventListener(type, () => { activeSince = Date.now(); }, { passive: true });
  }
  setInterval(() => {
    if (Date.now() - activeSince > keepEveryMs) return;
    for (const item of held) loupe.postJSON(itemUrl(item.id, "keep"), {});
  }, keepEveryMs);
  // An empty queue looks again every few seconds.
  setInterval(() => { if (held.length < 2) refill(true); }, 5000);

  window.addEventListener("pagehide", () => {
    for (const item of held) {
      fetch(itemUrl(item.id, "release"), {
        method: "POST", keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": loupe.csrfToken() },
        body: "{}",
      });
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest("input, textarea, select")) return;
    const key = event.key.toLowerCase();
    if (key === "a") { event.preventDefault(); decide("accept"); }
    else if (key === "r") { event.preventDefault(); decide("reject"); }
    else if (key === "z") { event.preventDefault(); undo(); }
  });
  $("accept").addEventListener("click", () => decide("accept"));
  $("reject").addEventListener("click", () => decide("reject"));
  $("undo").addEventListener("click", undo);

  refill();
  show();
})();
