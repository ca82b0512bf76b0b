// A line's monitoring page: one Chart.js chart per figure, each threshold a dashed line, from
// the json_script tag #monitoring-data; keys 1-4 switch the range (the links' data-shortcut).
"use strict";

(function () {
  const BLUE = "#1f6feb";
  const ORANGE = "#d9822b";
  const RED = "#a31515";
  const GREY = "#7a7a7a";
  const GREEN = "#1b6e2a";

  function series(label, data, color, extra) {
    return Object.assign(
      { label, data, borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 1.5, spanGaps: false },
      extra || {}
    );
  }

  function threshold(label, value, count, color) {
    return {
      label,
      data: new Array(count).fill(value),
      borderColor: color || RED,
      borderDash: [6, 4],
      borderWidth: 1.2,
      pointRadius: 0,
      fill: false,
    };
  }

  function charts(data) {
    const s = data.series;
    const t = data.thresholds;
    const n = data.labels.length;
    const limits = (label, value, color) => (value === null || value === undefined ? [] : [threshold(label, value, n, color)]);
    return {
      throughput: { type: "line", unit: "items / min", datasets: [series("items a minute", s.items_per_min, BLUE, { fill: true, backgroundColor: "rgba(31,111,235,0.12)" })] },
      latency: {
        type: "line",
        unit: "ms",
        logarithmic: true,
        datasets: [
          series("p50", s.p50_ms, BLUE),
          series("p95", s.p95_ms, ORANGE),
          series("p99", s.p99_ms, RED),
          series("model p95", s.model_p95_ms, GREY, { borderDash: [2, 2] }),
          ...limits(`budget ${t.latency_budget_ms} ms`, t.latency_budget_ms),
        ],
      },
      reject: {
        type: "line",
        unit: "%",
        datasets: [series("reject rate", s.reject_pct, BLUE), ...limits(`30-day rate ${t.reject_reference_pct}%`, t.reject_reference_pct, GREY)],
      },
      fail_safe: {
        type: "line",
        unit: "%",
        datasets: [series("fail-safe rate", s.fail_safe_pct, ORANGE), ...limits(`limit ${t.fail_safe_pct}%`, t.fail_safe_pct)],
      },
      backlog: {
        type: "line",
        unit: "open items",
        datasets: [series("open review items (peak)", s.review_backlog, BLUE), ...limits(`limit ${t.review_backlog}`, t.review_backlog)],
      },
      agreement: {
        type: "line",
        unit: "%",
        max: 100,
        datasets: [
          series("unbiased", s.unbiased_pct, GREEN, { pointRadius: 2 }),
          series("model seen", s.seen_pct, GREY, { pointRadius: 2, borderDash: [2, 2] }),
          ...limits(`target ${t.agreement_target_pct}%`, t.agreement_target_pct),
        ],
      },
      escapes: { type: "bar", unit: "escapes", datasets: [series("escapes", s.escapes, RED)] },
    };
  }

  function draw() {
    const source = document.getElementById("monitoring-data");
    if (!source || typeof window.Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const specs = charts(data);
    let drawn = 0;
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const spec = specs[canvas.dataset.chart];
      if (!spec) return;
      const y = { beginAtZero: !spec.logarithmic, title: { display: true, text: spec.unit } };
      if (spec.logarithmic) y.type = "logarithmic";
      if (spec.max) y.suggestedMax = spec.max;
      new window.Chart(canvas, {
        type: spec.type,
        data: { labels: data.labels, datasets: spec.datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          scales: { x: { ticks: { maxTicksLimit: 8, autoSkip: true } }, y },
          plugins: { legend: { labels: { boxWidth: 12 } } },
        },
      });
      canvas.dataset.drawn = String(spec.datasets.length);
      drawn += 1;
    });
    document.getElementById("monitoring-charts").dataset.drawn = String(drawn);
  }

  function shortcuts(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const link = document.querySelector(`#monitoring-ranges a[data-shortcut="${event.key}"]`);
    if (link) {
      event.preventDefault();
      window.location.assign(link.href);
    }
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("keydown", shortcuts);
})();
