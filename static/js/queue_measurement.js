// The labeling-queue measurement page: the new type's recall against labeled items, one line
// per order, with the target recall as a dashed line. Data from the json_script tag
// #queue-chart-data; draws on canvas#queue-chart with the vendored Chart.js.
"use strict";

(function () {
  const COLORS = { queue: "#1f6feb", random: "#d9822b", arrival: "#7a7a7a" };

  function draw() {
    const canvas = document.getElementById("queue-chart");
    const source = document.getElementById("queue-chart-data");
    if (!canvas || !source || typeof window.Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const steps = data.series.flatMap((s) => s.points.map((p) => p.labeled));
    const last = steps.length ? Math.max(...steps) : 1;
    const datasets = data.series.map((series) => ({
      label: series.name,
      data: series.points.map((p) => ({ x: p.labeled, y: p.recall, n: p.new_type_labeled })),
      borderColor: COLORS[series.key] || "#333",
      backgroundColor: COLORS[series.key] || "#333",
      tension: 0,
      pointRadius: 3,
    }));
    if (data.target_recall !== null && data.target_recall !== undefined) {
      datasets.push({
        label: `target recall ${data.target_recall}`,
        data: [
          { x: 0, y: data.target_recall },
          { x: last, y: data.target_recall },
        ],
        borderColor: "#1b6e2a",
        borderDash: [6, 4],
        pointRadius: 0,
        borderWidth: 1.5,
      });
    }
    const chart = new window.Chart(canvas, {
      type: "line",
      data: { datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: { xAxisKey: "x", yAxisKey: "y" },
        scales: {
          x: { type: "linear", min: 0, title: { display: true, text: "labeled items" } },
          y: { min: 0, max: 1, title: { display: true, text: "recall of the new type" } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (item) =>
                item.raw.n === undefined
                  ? item.dataset.label
                  : `${item.dataset.label}: recall ${item.raw.y} with ${item.raw.n} of the new type`,
            },
          },
        },
      },
    });
    canvas.dataset.drawn = String(chart.data.datasets.length);
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
