// Several runs' curves of one metric on one chart; unfinished runs are polled.
(function () {
  "use strict";
  const COLORS = ["#4f46e5", "#f79009", "#067647", "#b42318", "#0e7490", "#7c3aed",
    "#ca8a04", "#db2777", "#475467", "#15803d", "#1d4ed8", "#9a3412"];
  function start() {
    const root = document.getElementById("compare-root");
    const canvas = document.getElementById("compare-chart");
    if (!root || !canvas || !window.Chart) return;
    const metric = root.dataset.metric;
    const rows = Array.from(root.querySelectorAll("tr[data-run]"));
    const chart = new Chart(canvas, {
      type: "line",
      data: { datasets: rows.map((row, i) => ({
        label: row.dataset.label, data: [], borderColor: COLORS[i % COLORS.length],
        backgroundColor: COLORS[i % COLORS.length],
        pointRadius: (c) => (c.dataset.data.length === 1 ? 4 : 0), tension: 0.2 })) },
      options: { animation: false, maintainAspectRatio: false, parsing: false,
        scales: { x: { type: "linear", title: { display: true, text: "step" } } } },
    });
    function poll(row, i) {
      fetch(row.dataset.url, { credentials: "same-origin" })
        .then((r) => r.json())
        .then(function (data) {
          const pts = (data.series[metric] || []).map((p) => ({ x: p[0], y: p[1] }));
          chart.data.datasets[i].data = pts;
          chart.update();
          const last = row.querySelector("[data-last]");
          last.textContent = pts.length ? pts[pts.length - 1].y.toPrecision(4) : "—";
          row.dataset.points = String(pts.length);
          if (!data.finished) setTimeout(() => poll(row, i), 3000);
        })
        .catch(() => setTimeout(() => poll(row, i), 5000));
    }
    rows.forEach(poll);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
