// The monitoring page's concept-drift section: per rolling window of unbiased human-checked
// items, disagreement and escape rate with their 95% intervals (shaded) against the
// reference's upper bounds (dashed: a window whose low end passes them drifts), and CBPE's
// estimated agreement with its range against the realized agreement; from the json_script tag
// #concept-data (CSP: no inline script).
"use strict";

(function () {
  const BLUE = "#1f6feb";
  const ORANGE = "#d9822b";
  const GREEN = "#1b6e2a";
  const RED = "#a31515";

  function dashed(label, value, count, color) {
    return { label, data: new Array(count).fill(value), borderColor: color, borderDash: [6, 4], borderWidth: 1.2, pointRadius: 0, fill: false };
  }

  // a band: its low edge, then its high edge filled down to the low one
  function band(label, rows, key, color) {
    return [
      { label: `${label} low`, data: rows.map((r) => r[key].low_pct), borderColor: "transparent", pointRadius: 0, fill: false, band: true },
      { label: `${label} 95%`, data: rows.map((r) => r[key].high_pct), borderColor: "transparent", backgroundColor: color + "33", pointRadius: 0, fill: "-1" },
    ];
  }

  function line(label, rows, key, color) {
    return { label, data: rows.map((r) => r[key].pct), borderColor: color, backgroundColor: color, pointRadius: 2, spanGaps: true, fill: false };
  }

  function specs(data) {
    const rows = data.windows;
    const labels = rows.map((r) => (r.end ? r.end.slice(5, 16).replace("T", " ") : r.label));
    const ref = data.reference;
    const rates = {
      unit: "% of unbiased items",
      labels,
      datasets: [
        ...band("disagreement", rows, "disagreement", BLUE),
        line("disagreement", rows, "disagreement", BLUE),
        ...band("escape rate", rows, "escape", ORANGE),
        line("escape rate (of defective)", rows, "escape", ORANGE),
        dashed("reference disagreement, high", ref.disagreement.high_pct, rows.length, BLUE),
        dashed("reference escape rate, high", ref.escape.high_pct, rows.length, RED),
      ],
    };
    const cbpe = {
      unit: "% agreement",
      labels,
      datasets: [
        ...band("estimated", rows, "estimated_agreement", GREEN),
        line("estimated (CBPE)", rows, "estimated_agreement", GREEN),
        line("realized", rows, "realized_agreement", BLUE),
      ],
    };
    return { rates, cbpe };
  }

  function draw() {
    const source = document.getElementById("concept-data");
    const box = document.getElementById("concept-charts");
    if (!source || !box || typeof window.Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    if (!data.windows || !data.windows.length) return;
    const all = specs(data);
    let drawn = 0;
    box.querySelectorAll("canvas[data-concept-chart]").forEach((canvas) => {
      const spec = all[canvas.dataset.conceptChart];
      if (!spec) return;
      new window.Chart(canvas, {
        type: "line",
        data: { labels: spec.labels, datasets: spec.datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { x: { ticks: { autoSkip: true, maxTicksLimit: 10 } }, y: { beginAtZero: true, title: { display: true, text: spec.unit } } },
          plugins: {
            legend: { labels: { boxWidth: 12, filter: (item, chart) => !chart.datasets[item.datasetIndex].band } },
          },
        },
      });
      canvas.dataset.drawn = String(spec.datasets.length);
      drawn += 1;
    });
    box.dataset.drawn = String(drawn);
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
