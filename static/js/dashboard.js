// Manager dashboard: charts from json_script blocks the server renders, and sortable tables.
(function () {
  "use strict";
  const COLORS = ["#4f46e5", "#067647", "#b54708", "#b42318", "#0e7490", "#7c3aed", "#475467"];

  function data(id, fallback) {
    const el = document.getElementById(id);
    if (!el) return fallback;
    const value = JSON.parse(el.textContent);
    return value === null || value === undefined ? fallback : value;
  }

  function agreementChart() {
    const canvas = document.getElementById("agreement-chart");
    if (!canvas) return;
    const all = data("agreement-data", {});
    let chart = null;
    function draw(period) {
      const series = all[period] || {};
      const periods = [...new Set(Object.values(series).flat().map((p) => p.period))].sort();
      const datasets = Object.entries(series).map(([name, points], i) => {
        const byPeriod = Object.fromEntries(points.map((p) => [p.period, p]));
        return {
          label: name === "pairs" ? "preferences" : name,
          data: periods.map((p) => (byPeriod[p] && byPeriod[p].alpha !== null ? byPeriod[p].alpha : null)),
          items: periods.map((p) => (byPeriod[p] ? byPeriod[p].items : 0)),
          borderColor: COLORS[i % COLORS.length],
          backgroundColor: COLORS[i % COLORS.length],
          spanGaps: true,
        };
      });
      if (chart) chart.destroy();
      chart = new Chart(canvas, {
        type: "line",
        data: { labels: periods, datasets },
        options: {
          maintainAspectRatio: false, animation: false,
          scales: { y: { suggestedMin: 0, suggestedMax: 1, title: { display: true, text: "α" } } },
          plugins: { tooltip: { callbacks: {
            afterLabel: (ctx) => `${ctx.dataset.items[ctx.dataIndex]} items`,
          } } },
        },
      });
    }
    document.querySelectorAll("input[name=agreement-period]").forEach((radio) => {
      radio.addEventListener("change", () => draw(radio.value));
    });
    draw("day");
  }

  function barChart(id, rows, label, key, value) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: { labels: rows.map((r) => r[key]), datasets: [{ label, data: rows.map((r) => r[value]), backgroundColor: COLORS[0] }] },
      options: { maintainAspectRatio: false, animation: false },
    });
  }

  function labelsChart() {
    const canvas = document.getElementById("labels-chart");
    if (!canvas) return;
    const positions = data("best-position-data", []);
    const choices = data("choices-data", []);
    const labels = [...positions.map((r) => `best shown ${r.position}`), ...choices.map((r) => `choice ${r.choice}`)];
    const values = [...positions.map((r) => r.judgements), ...choices.map((r) => r.judgements)];
    new Chart(canvas, {
      type: "bar",
      data: { labels, datasets: [{ label: "judgements", data: values, backgroundColor: COLORS[1] }] },
      options: { maintainAspectRatio: false, animation: false },
    });
  }

  function runsChart() {
    const canvas = document.getElementById("reward-curve");
    const select = document.getElementById("curve-metric");
    if (!canvas || !select) return;
    const runs = data("curves-data", []);
    const names = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
    const preferred = ["rewards/margins", "eval_pairwise_accuracy", "loss"].find((n) => names.includes(n)) || names[0];
    names.forEach((name) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      option.selected = name === preferred;
      select.appendChild(option);
    });
    let chart = null;
    function draw(name) {
      if (chart) chart.destroy();
      chart = new Chart(canvas, {
        type: "line",
        data: { datasets: runs.filter((r) => r.metrics[name]).map((r, i) => ({
          label: r.label,
          data: r.metrics[name].map(([x, y]) => ({ x, y })),
          borderColor: COLORS[i % COLORS.length], pointRadius: 0,
        })) },
        options: { maintainAspectRatio: false, animation: false, parsing: false,
          scales: { x: { type: "linear", title: { display: true, text: "step" } } } },
      });
    }
    select.addEventListener("change", () => draw(select.value));
    if (preferred) draw(preferred);
  }

  // Sortable tables: a button in each header; cells carry data-value for the comparison.
  function sortable(table) {
    const headers = [...table.querySelectorAll("thead th")];
    headers.forEach((th, column) => {
      const button = th.querySelector("button[data-sort]");
      if (!button) return;
      button.addEventListener("click", () => {
        const descending = th.getAttribute("aria-sort") !== "descending";
        headers.forEach((h) => h.setAttribute("aria-sort", "none"));
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        const numeric = button.dataset.sort === "number";
        const body = table.tBodies[0];
        const rows = [...body.rows].filter((r) => r.cells.length > column);
        const key = (row) => {
          const raw = row.cells[column].dataset.value ?? row.cells[column].textContent;
          if (!numeric) return raw.toLowerCase();
          return raw === "" ? null : Number(raw);
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          if (x === y) return 0;
          if (x === null) return 1;   // empty cells last either way
          if (y === null) return -1;
          return (x < y ? -1 : 1) * (descending ? -1 : 1);
        });
        rows.forEach((row) => body.appendChild(row));
      });
    });
  }

  function start() {
    document.querySelectorAll("table.sortable").forEach(sortable);
    if (!window.Chart) return;
    agreementChart();
    barChart("per-day", data("per-day-data", []), "judgements", "day", "judgements");
    labelsChart();
    runsChart();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
