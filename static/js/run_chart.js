// Live curves for a training run: poll the metrics endpoint while the run is going.
// The lead charts (canvas[data-metric]) are in the page; every other logged metric gets a
// chart of its own in #all-metrics as it first appears.
(function () {
  "use strict";
  function makeChart(canvas) {
    return new Chart(canvas, {
      type: "line",
      data: { datasets: [
        { label: "train", data: [], borderColor: "#4f46e5", backgroundColor: "#4f46e5", pointRadius: (c) => (c.dataset.data.length === 1 ? 4 : 0), tension: 0.2 },
        { label: "held-out", data: [], borderColor: "#f79009", backgroundColor: "#f79009",
          pointRadius: 5, showLine: false },
      ] },
      options: { animation: false, maintainAspectRatio: false, parsing: false,
        scales: { x: { type: "linear", title: { display: true, text: "step" } } } },
    });
  }
  function start() {
    const root = document.getElementById("metrics-root");
    if (!root || !window.Chart) return;
    const grid = document.getElementById("all-metrics");
    const charts = {};
    document.querySelectorAll("canvas[data-metric]").forEach(function (canvas) {
      charts[canvas.dataset.metric] = makeChart(canvas);
    });
    function ensure(name) {
      if (charts[name] || !grid) return;
      const box = document.createElement("section");
      const title = document.createElement("h3");
      title.textContent = name;  // metric names come from the trainer: text, never markup
      const holder = document.createElement("div");
      holder.className = "chart-box";
      const canvas = document.createElement("canvas");
      canvas.dataset.extraMetric = name;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", name + " per step");
      holder.appendChild(canvas);
      box.append(title, holder);
      grid.appendChild(box);
      charts[name] = makeChart(canvas);
    }
    function poll() {
      fetch(root.dataset.url, { credentials: "same-origin" })
        .then((r) => r.json())
        .then(function (data) {
          Object.keys(data.series).forEach(function (series) {
            const base = series.startsWith("eval_") ? series.slice(5) : series;
            if (!charts[base] && !(series.startsWith("eval_") && charts[series])) ensure(base);
          });
          let points = 0;
          Object.keys(charts).forEach(function (name) {
            [name, "eval_" + name].forEach(function (series, index) {
              const pts = (data.series[series] || []).map((p) => ({ x: p[0], y: p[1] }));
              charts[name].data.datasets[index].data = pts;
              points += pts.length;
            });
            charts[name].update();
          });
          root.dataset.points = String(points);
          root.dataset.charts = String(Object.keys(charts).length);
          root.dataset.finished = data.finished ? "1" : "";
          if (!data.finished) setTimeout(poll, 2000);
        })
        .catch(() => setTimeout(poll, 5000));
    }
    poll();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
