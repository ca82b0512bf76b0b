// The pipeline-run page: polls the run's status while it runs and updates each step's row
// (state, progress, duration, log, artifacts). Attached to [data-pipeline-run].
"use strict";

(function () {
  const POLL_MS = 2000;

  function setText(row, field, text) {
    const element = row.querySelector(`[data-field="${field}"]`);
    if (element && element.textContent !== text) element.textContent = text;
  }

  function render(table, status) {
    for (const step of status.steps) {
      const row = table.querySelector(`tr[data-step="${step.name}"]`);
      if (!row) continue;
      row.className = step.state;
      setText(row, "state", step.state + (step.attempts > 1 ? ` (try ${step.attempts})` : ""));
      setText(row, "duration", step.duration_s === null ? "–" : `${step.duration_s} s`);
      setText(row, "error", step.error);
      setText(row, "log", step.log);
      setText(row, "artifacts", JSON.stringify(step.artifacts, null, 1));
      const bar = row.querySelector('[data-field="progress"]');
      if (bar) bar.value = step.progress;
    }
    const badge = document.querySelector("[data-run-state]");
    if (badge) badge.textContent = status.state;
    const error = document.querySelector("[data-run-error]");
    if (error) {
      error.textContent = status.error;
      error.hidden = !status.error;
    }
    const retry = document.querySelector("[data-run-retry]");
    if (retry) retry.hidden = !status.is_retryable;
    const candidate = document.querySelector("[data-run-candidate]");
    if (candidate && status.candidate_url && !candidate.querySelector("a")) {
      const link = document.createElement("a");
      link.href = status.candidate_url;
      link.textContent = status.candidate;
      candidate.replaceChildren(link);
    }
  }

  async function poll(table) {
    const answer = await window.loupe.getJSON(table.dataset.pipelineRun, { background: true });
    if (answer.ok) {
      render(table, answer.data);
      if (answer.data.is_finished) return;
    }
    // a dropped answer is tried again: the run goes on whether or not the page hears of it
    setTimeout(() => poll(table), POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.querySelector("[data-pipeline-run]");
    if (table && table.dataset.finished !== "true") setTimeout(() => poll(table), POLL_MS);
  });
})();
