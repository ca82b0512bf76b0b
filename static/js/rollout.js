// The rollout page: the challenger's share at each step (a stepped line) and the items each
// model answered there (bars), from the json_script tag #rollout-steps (CSP: no inline
// script). Keys a, s and r press the Advance, Switch and Roll back buttons.
"use strict";

(function () {
  const BLUE = "#1f6feb";
  const ORANGE = "#d9822b";

  function draw() {
    const canvas = document.getElementById("rollout-chart");
    const source = document.getElementById("rollout-steps");
    if (!canvas || !source || typeof Chart === "undefined") return;
    const steps = JSON.parse(source.textContent);
    const labels = steps.map((s) => s.first.slice(5, 16).replace("T", " "));
    new Chart(canvas, {
      data: {
        labels,
        datasets: [
          { type: "line", label: "challenger's share (%)", data: steps.map((s) => 100 * s.share), stepped: "before", borderColor: ORANGE, backgroundColor: ORANGE, yAxisID: "share" },
          { type: "bar", label: "items, active model", data: steps.map((s) => s.items - s.challenger_items), backgroundColor: BLUE + "99", stack: "items", yAxisID: "items" },
          { type: "bar", label: "items, challenger", data: steps.map((s) => s.challenger_items), backgroundColor: ORANGE + "99", stack: "items", yAxisID: "items" },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          share: { position: "left", min: 0, max: 100, title: { display: true, text: "% of new items" } },
          items: { position: "right", stacked: true, beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "items" } },
          x: { stacked: true },
        },
      },
    });
  }

  function shortcuts(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
    const button = document.querySelector(`#rollout-actions button[data-shortcut="${event.key}"]`);
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("keydown", shortcuts);
})();
