// Manager dashboard charts; the numbers arrive as json_script blocks rendered by the server.
(function () {
  "use strict";
  function data(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : [];
  }
  function start() {
    if (!window.Chart) return;
    const perDay = data("per-day-data");
    const perDayCanvas = document.getElementById("per-day");
    if (perDayCanvas) {
      new Chart(perDayCanvas, {
        type: "bar",
        data: { labels: perDay.map((r) => r.day), datasets: [{ label: "judgements", data: perDay.map((r) => r.n), backgroundColor: "#4f46e5" }] },
        options: { maintainAspectRatio: false, animation: false },
      });
    }
    const curveCanvas = document.getElementById("reward-curve");
    if (curveCanvas) {
      const curve = data("curve-data");
      const series = (name) => curve.filter((r) => r.name === name).map((r) => ({ x: r.step, y: r.value }));
      new Chart(curveCanvas, {
        type: "line",
        data: { datasets: [
          { label: "rewards/margins", data: series("rewards/margins"), borderColor: "#067647", pointRadius: 0 },
          { label: "loss", data: series("loss"), borderColor: "#4f46e5", pointRadius: 0 },
        ] },
        options: { maintainAspectRatio: false, animation: false, parsing: false,
          scales: { x: { type: "linear", title: { display: true, text: "step" } } } },
      });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
