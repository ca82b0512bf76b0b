// Dataset pages: start an export, and follow exports and imports while a worker runs them.
// An element with data-status-url is polled each second until its state is done or failed:
// a progress bar while it runs, then a download link (export) or a reload (import page).
"use strict";

(function () {
  const POLL_MS = 1000;
  const FINISHED = ["done", "failed"];

  function render(cell, data) {
    cell.dataset.state = data.state;
    cell.replaceChildren();
    if (data.state === "done" && data.download_url) {
      const link = document.createElement("a");
      link.href = data.download_url;
      link.textContent = "Download";
      cell.append(link);
    } else if (data.state === "failed") {
      const error = document.createElement("span");
      error.className = "error";
      error.textContent = "failed: " + (data.error || "see the server log");
      cell.append(error);
    } else {
      const bar = document.createElement("progress");
      bar.max = Math.max(data.total, 1);
      bar.value = data.done;
      const text = document.createElement("span");
      text.textContent = ` ${data.state}: ${data.done} of ${data.total}`;
      cell.append(bar, text);
    }
  }

  async function follow(cell) {
    while (!FINISHED.includes(cell.dataset.state)) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const { ok, data } = await loupe.getJSON(cell.dataset.statusUrl, { background: true });
      if (!ok) continue; // a dropped request: ask again next time
      if (FINISHED.includes(data.state) && cell.hasAttribute("data-reload-when-finished")) {
        window.location.reload(); // the page lists the outcome (problems, counts)
        return;
      }
      render(cell, data);
    }
  }

  function attachExportForm(form) {
    const message = form.querySelector("[data-export-message]");
    const rows = document.querySelector("[data-export-rows]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      message.textContent = "";
      const format = form.elements.format;
      const { ok, data } = await loupe.postJSON(form.action, { format: format.value });
      button.disabled = false;
      if (!ok) {
        message.classList.add("error");
        message.textContent = data.detail || "the export could not start";
        return;
      }
      // the same export may already be on the page (it was running): follow that one
      if (rows.querySelector(`[data-status-url="${data.status_url}"]`)) return;
      rows.querySelector("[data-no-exports]")?.remove();
      const row = document.createElement("tr");
      const cells = [format.selectedOptions[0].textContent, "", "", "you", "now"];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        row.append(td);
      }
      const cell = row.children[1];
      cell.dataset.statusUrl = data.status_url;
      render(cell, data);
      rows.prepend(row);
      follow(cell);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-export-form]").forEach(attachExportForm);
    document.querySelectorAll("[data-status-url]").forEach(follow);
  });
})();
