// Keyboard-first ranking for the annotator's work page.
// Number keys pick responses best -> worst, Backspace undoes a pick, Esc resets, Enter submits.
// Drag and drop (SortableJS) reorders the same list. The server renders every item; this file
// only keeps the ranking state of the form currently on the page.
(function () {
  "use strict";

  let state = null;

  function form() {
    return document.getElementById("judge-form");
  }

  function init() {
    const f = form();
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    // Make sure htmx owns the new form before a fast keypress can submit it natively.
    if (window.htmx) htmx.process(f);
    const list = f.querySelector("#ranking");
    const shown = Array.from(f.querySelectorAll(".candidate")).map((el) => el.dataset.id);
    state = { form: f, list: list, shown: shown, picked: [], dragged: false, started: Date.now() };
    if (window.Sortable) {
      Sortable.create(list, {
        animation: 120,
        onEnd: function () {
          state.dragged = true;
          state.picked = Array.from(list.children).map((li) => li.dataset.id);
          render();
        },
      });
    }
    f.querySelector("#reset-btn").addEventListener("click", reset);
    render();
  }

  function complete() {
    return state.dragged || state.picked.length >= state.shown.length - 1;
  }

  function order() {
    const rest = state.shown.filter((id) => !state.picked.includes(id));
    return state.picked.concat(rest);
  }

  function render() {
    const ids = order();
    const items = {};
    state.list.querySelectorAll("li").forEach((li) => (items[li.dataset.id] = li));
    ids.forEach((id) => state.list.appendChild(items[id]));
    const done = complete();
    state.list.classList.toggle("ranked", done);
    state.form.querySelectorAll(".candidate").forEach((card) => {
      const position = done ? ids.indexOf(card.dataset.id) : state.picked.indexOf(card.dataset.id);
      const badge = card.querySelector(".rank-badge");
      badge.textContent = position >= 0 ? "#" + (position + 1) : "";
      card.classList.toggle("picked", position >= 0);
      card.classList.toggle("best", position === 0);
    });
    state.list.querySelectorAll("li").forEach((li, index) => {
      li.classList.toggle("placed", done || index < state.picked.length);
    });
    state.form.querySelector("input[name=ranking]").value = done ? ids.join(";") : "";
    state.form.querySelector("#submit-btn").classList.toggle("ready", done);
  }

  function pick(key) {
    const id = state.shown[key - 1];
    if (!id || state.picked.includes(id)) return;
    if (state.dragged) {
      state.dragged = false;
      state.picked = [];
    }
    state.picked.push(id);
    render();
  }

  function reset() {
    state.picked = [];
    state.dragged = false;
    showError("");
    render();
  }

  function showError(message) {
    const el = state.form.querySelector("#submit-error");
    el.textContent = message;
    el.hidden = !message;
  }

  function submit() {
    if (!complete()) {
      showError("Rank every response first: press their numbers from best to worst.");
      return;
    }
    state.form.querySelector("input[name=duration_ms]").value = String(Date.now() - state.started);
    state.form.requestSubmit();
  }

  document.addEventListener("keydown", function (event) {
    if (!form() || !state || state.form !== form()) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[1-9]$/.test(event.key)) {
      pick(Number(event.key));
      event.preventDefault();
    } else if (event.key === "Backspace") {
      if (state.dragged) reset();
      else {
        state.picked.pop();
        render();
      }
      event.preventDefault();
    } else if (event.key === "Escape") {
      reset();
    } else if (event.key === "Enter") {
      event.preventDefault();
      submit();
    }
  });

  document.addEventListener("submit", function (event) {
    // A click on the submit button goes through the same checks as the Enter key.
    if (event.target === form() && !complete()) {
      event.preventDefault();
      event.stopImmediatePropagation();
      showError("Rank every response first: press their numbers from best to worst.");
    } else if (event.target === form()) {
      state.form.querySelector("input[name=duration_ms]").value = String(Date.now() - state.started);
    }
  }, true);

  document.addEventListener("htmx:sendError", function () {
    if (state) showError("The server could not be reached. Your ranking is kept: press Enter to retry.");
  });
  document.addEventListener("htmx:responseError", function (event) {
    if (state) showError("The server answered with an error (" + event.detail.xhr.status + "). Your ranking is kept: press Enter to retry.");
  });
  document.addEventListener("htmx:afterSwap", init);
  document.addEventListener("DOMContentLoaded", init);
  if (document.readyState !== "loading") init();
})();
