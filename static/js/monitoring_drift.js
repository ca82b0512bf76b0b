// The monitoring page's drift section: per statistic the latest window's corrected p-value
// (as -log10, the alarm level dashed), the embedding AUC of each check with its threshold, and
// the probability histograms of the reference and each station's latest window; from the
// json_script tag #drift-data (CSP: no inline script).
"use strict";

(function () {
  const COLORS = ["#1f6feb", "#d9822b", "#1b6e2a", "#8250df", "#7a7a7a", "#a31515"];
  const RED = "#a31515";

  function dashed(label, value, count) {
    return { type: "line", label, data: new Array(count).fill(value), borderColor: RED, borderDash: [6, 4], borderWidth: 1.2, pointRadius: 0, fill: false };
  }

  function minusLog10(p) {
    if (p === null || p === undefined) return null;
    return Math.min(12, -Math.log10(Math.max(p, 1e-12)));
  }

  function share(counts) {
    if (!counts) return [];
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    return counts.map((c) => (100 * c) / total);
  }

  function specs(data) {
    const names = data.statistics.concat(["embedding"]);
    const tests = {
      type: "bar",
      unit: "-log10 p (corrected)",
      labels: names,
      datasets: data.stations
        .map((s, i) => ({
          label: s.station,
          data: names.map((n) => minusLog10(n === "embedding" ? s.embedding_p_adjusted : s.p_adjusted[n])),
          backgroundColor: COLORS[i % COLORS.length],
        }))
        .concat([dashed(`alarm: p < ${data.alpha}`, -Math.log10(data.alpha), names.length)]),
    };
    const times = Array.from(new Set(data.history.map((h) => h.at))).sort();
    const stations = Array.from(new Set(data.history.map((h) => h.station)));
    const auc = {
      type: "line",
      unit: "AUC",
      max: 1,
      labels: times.map((t) => t.slice(11, 16)),
      datasets: stations
        .map((name, i) => {
          const byTime = new Map(data.history.filter((h) => h.station === name).map((h) => [h.at, h.auc]));
          return {
            label: name,
            data: times.map((t) => (byTime.has(t) ? byTime.get(t) : null)),
            borderColor: COLORS[i % COLORS.length],
            backgroundColor: COLORS[i % COLORS.length],
            pointRadius: 2,
            spanGaps: true,
          };
        })
        .concat([dashed(`threshold ${data.auc_threshold}`, data.auc_threshold, times.length)]),
    };
    const first = data.stations[0] || {};
    const bins = (first.histogram_reference || []).map((_, i) => `${(i / 10).toFixed(1)}–${((i + 1) / 10).toFixed(1)}`);
    const histogram = {
      type: "bar",
      unit: "% of items",
      labels: bins,
      datasets: [{ label: "reference", data: share(first.histogram_reference), backgroundColor: "#bbbbbb" }].concat(
        data.stations.map((s, i) => ({ label: s.station, data: share(s.histogram_window), backgroundColor: COLORS[i % COLORS.length] }))
      ),
    };
    return { tests, auc, histogram };
  }

  function draw() {
    const source = document.getElementById("drift-data");
    const box = document.getElementById("drift-charts");
    if (!source || !box || typeof window.Chart === "undefined") return;
    const all = specs(JSON.parse(source.textContent));
    let drawn = 0;
    box.querySelectorAll("canvas[data-drift-chart]").forEach((canvas) => {
      const spec = all[canvas.dataset.driftChart];
      if (!spec) return;
      const y = { beginAtZero: true, title: { display: true, text: spec.unit } };
      if (spec.max) y.suggestedMax = spec.max;
      new window.Chart(canvas, {
        type: spec.type,
        data: { labels: spec.labels, datasets: spec.datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { x: { ticks: { autoSkip: true, maxTicksLimit: 10 } }, y },
          plugins: { legend: { labels: { boxWidth: 12 } } },
        },
      });
      canvas.dataset.drawn = String(spec.datasets.length);
      drawn += 1;
    });
    box.dataset.drawn = String(drawn);
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
