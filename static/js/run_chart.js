// Live curves for a training run: poll the metrics endpoint while the run is going.
(function () {
  "use strict";
  function start() {
    const root = document.getElementById("metrics-root");
    if (!root || !window.Chart) return;
    const charts = {};
    document.querySelectorAll("canvas[data-metric]").forEach(function (canvas) {
      const name = canvas.dataset.metric;
      charts[name] = new Chart(canvas, {
        type: "line",
        data: { datasets: [
          { label: "train", data: [], borderColor: "#4f46e5", pointRadius: 0, tension: 0.2 },
          { label: "held-out", data: [], borderColor: "#f79009", backgroundColor: "#f79009",
            pointRadius: 5, showLine: false },
        ] },
        options: { animation: false, maintainAspectRatio: false, parsing: false,
          scales: { x: { type: "linear", title: { display: true, text: "step" } } } },
      });
    });
    function poll() {
      fetch(root.dataset.url, { credentials: "same-origin" })
        .then((r) => r.json())
        .then(function (data) {
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
