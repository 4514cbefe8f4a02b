// The annotator's work page: keyboard-first judgements, drafts, undo and offline resend.
// The server renders every item; this file keeps the state of the form on the page only.
// Untrusted text (prompts, responses, drafts) is only ever set through textContent/value.
(function () {
  "use strict";

  const PENDING_KEY = "preflab-pending-submit";
  let state = null;
  // Assignments whose judgement is on its way to the server: never prefetch them again.
  // body[data-inflight] mirrors the count, so people (and tests) can see all is saved.
  const inFlight = new Set();
  let sending = Promise.resolve();
  function track(assignment, sending) {
    if (sending) inFlight.add(assignment);
    else inFlight.delete(assignment);
    document.body.dataset.inflight = String(inFlight.size);
  }

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const form = () => document.getElementById("judge-form");
  const has = (kind) => state && state.kinds.includes(kind);

  // ---------------------------------------------------------------- setup per item
  function init() {
    initUndo();
    const f = form();
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    // Make sure htmx owns the new form before a fast keypress can submit it natively.
    if (window.htmx) htmx.process(f);
    const shown = $$(".candidate", f).map((el) => el.dataset.id);
    state = {
      form: f, shown: shown, kinds: (f.dataset.kinds || "").split(" "),
      assignment: f.dataset.assignment, groups: [], dragged: false, started: Date.now(),
      editPending: false, lastEdited: null,
    };
    const list = $("#ranking", f);
    if (list && window.Sortable) {
      Sortable.create(list, { animation: 120, onEnd: () => fromList() });
    }
    if (list) {
      list.addEventListener("keydown", moveFocusedRow);
      const reset = $("#reset-btn", f);
      if (reset) reset.addEventListener("click", resetRanking);
    }
    initEditors();
    initSyncScroll();
    f.addEventListener("change", updateReady);  // mouse clicks on choices and ratings
    renderRanking();
    updateReady();
    prefetchNext();
  }

  // ---------------------------------------------------------------- prefetch
  // While the annotator works, fetch (and reserve) the next item, so that submitting shows it
  // at once and the judgement is sent in the background.
  function prefetchNext() {
    const mine = state;
    // Wait for the judgement being sent: until it lands the server counts it as held, and
    // max_pending would refuse to reserve another item.
    sending.then(() => {
      const url = mine.form.dataset.prefetch + Array.from(inFlight).map((id) => "," + id).join("");
      return fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } });
    })
      .then((r) => (r.status === 200 ? r.text() : null))
      .then((html) => { if (html && mine === state) mine.nextHtml = html; })
      .catch(() => {});
  }

  function swapWorkspace(html) {
    const workspace = document.getElementById("workspace");
    workspace.innerHTML = html;  // server-rendered and escaped, like any htmx swap
    if (window.htmx) htmx.process(workspace);
    init();
  }

  // ---------------------------------------------------------------- ranking
  function placed() {
    return state.groups.flat();
  }

  function rankingComplete() {
    return state.dragged || placed().length >= state.shown.length - 1;
  }

  function fullGroups() {
    const rest = state.shown.filter((id) => !placed().includes(id));
    return state.groups.concat(rest.map((id) => [id]));
  }

  function renderRanking() {
    const list = $("#ranking", state.form);
    if (!list) return;
    const groups = fullGroups();
    const items = {};
    $$("li", list).forEach((li) => (items[li.dataset.id] = li));
    const done = rankingComplete();
    let position = 0;
    groups.forEach((group) => {
      position += 1;
      group.forEach((id, index) => {
        const li = items[id];
        list.appendChild(li);
        li.classList.toggle("placed", done || placed().includes(id));
        $(".tie-mark", li).hidden = index === 0;
        const card = $(`.candidate[data-id="${id}"]`, state.form);
        const shownRank = done || placed().includes(id);
        $(".rank-badge", card).textContent = shownRank ? "#" + position : "";
        card.classList.toggle("picked", shownRank);
        card.classList.toggle("best", shownRank && position === 1);
      });
    });
    list.classList.toggle("ranked", done);
    $("input[name=ranking]", state.form).value = done
      ? groups.map((g) => g.join(",")).join(";")
      : "";
    updateReady();
  }

  function pick(key) {
    const id = state.shown[key - 1];
    if (!id || placed().includes(id)) return;
    if (state.dragged) {
      state.dragged = false;
      state.groups = [];
    }
    state.groups.push([id]);
    renderRanking();
  }

  function toggleTie() {
    const groups = state.groups;
    if (!groups.length) return;
    const last = groups[groups.length - 1];
    if (last.length > 1) groups.push([last.pop()]);
    else if (groups.length >= 2) groups[groups.length - 2].push(groups.pop()[0]);
    renderRanking();
  }

  function fromList() {
    state.dragged = true;
    state.groups = $$("#ranking li", state.form).map((li) => [li.dataset.id]);
    renderRanking();
  }

  function moveFocusedRow(event) {
    if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
    const li = event.target.closest("li");
    if (!li) return;
    const sibling = event.key === "ArrowUp" ? li.previousElementSibling : li.nextElementSibling;
    if (!sibling) return;
    event.preventDefault();
    if (event.key === "ArrowUp") sibling.before(li);
    else sibling.after(li);
    fromList();
    li.focus();
  }

  function resetRanking() {
    state.groups = [];
    state.dragged = false;
    showError("");
    renderRanking();
  }

  // ---------------------------------------------------------------- pairwise
  function choose(value) {
    const radio = $(`input[name=choice][value="${value}"]`, state.form);
    if (radio) radio.checked = true;
    updateReady();
  }

  function toggleStrength() {
    const much = $("input[name=strength][value='2']", state.form);
    const slight = $("input[name=strength][value='1']", state.form);
    if (much && slight) (much.checked ? slight : much).checked = true;
  }

  function initSyncScroll() {
    if (!state.form.classList.contains("is-pairwise")) return;
    const boxes = $$(".candidate-text", state.form);
    let syncing = false;
    boxes.forEach((box) => {
      box.addEventListener("scroll", () => {
        if (syncing) return;
        syncing = true;
        const ratio = box.scrollTop / Math.max(1, box.scrollHeight - box.clientHeight);
        boxes.filter((b) => b !== box).forEach((b) => {
          b.scrollTop = ratio * (b.scrollHeight - b.clientHeight);
        });
        requestAnimationFrame(() => (syncing = false));
      });
    });
  }

  // ---------------------------------------------------------------- ratings
  function rateFocused(event) {
    const radio = event.target;
    if (!radio.matches || !radio.matches(".ratings input[type=radio]")) return false;
    if (!/^[1-9]$/.test(event.key)) return false;
    const target = $(`input[name="${radio.name}"][value="${event.key}"]`, state.form);
    if (!target) return true;
    target.checked = true;
    updateReady();
    const groups = $$(".ratings input[type=radio]", state.form)
      .filter((r) => r.value === "1");
    const index = groups.findIndex((r) => r.name === radio.name);
    const next = groups[index + 1];
    (next ? $(`input[name="${next.name}"]:checked`, state.form) || next : target).focus();
    return true;
  }

  function missingRatings() {
    const names = new Set($$(".ratings input[type=radio]", state.form).map((r) => r.name));
    return Array.from(names).filter((n) => !$(`input[name="${n}"]:checked`, state.form));
  }

  // ---------------------------------------------------------------- corrections
  function draftKey(id) {
    return `preflab-draft-${state.assignment}-${id}`;
  }

  function initEditors() {
    $$(".candidate", state.form).forEach((card) => {
      const area = $(".edit-text", card);
      if (!area) return;
      const id = card.dataset.id;
      const draft = localStorage.getItem(draftKey(id));
      if (draft !== null && draft !== area.dataset.original) {
        area.value = draft;
        openEditor(card, false);
        state.lastEdited = card;
      }
      area.addEventListener("input", () => {
        localStorage.setItem(draftKey(id), area.value);
        state.lastEdited = card;
        renderDiff(card);
      });
      area.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.preventDefault();
          event.stopPropagation();
          area.blur();
          card.setAttribute("tabindex", "-1");
          card.focus();
        }
      });
      $(".edit-btn", card).addEventListener("click", () => openEditor(card, true));
      $(".discard-btn", card).addEventListener("click", () => {
        area.value = area.dataset.original;
        localStorage.removeItem(draftKey(id));
        if (state.lastEdited === card) state.lastEdited = null;
        $(".editor", card).hidden = true;
        card.classList.remove("editing");
      });
    });
  }

  function openEditor(card, focus) {
    $(".editor", card).hidden = false;
    card.classList.add("editing");
    renderDiff(card);
    if (focus) $(".edit-text", card).focus();
  }

  function tokens(text) {
    return text.split(/(\s+)/).filter((t) => t.length);
  }

  function renderDiff(card) {
    const area = $(".edit-text", card);
    const box = $(".diff", card);
    const a = tokens(area.dataset.original);
    const b = tokens(area.value);
    // Word-level LCS: responses are short, so the O(n*m) table is cheap.
    const table = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
    for (let i = a.length - 1; i >= 0; i--) {
      for (let j = b.length - 1; j >= 0; j--) {
        table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
      }
    }
    box.replaceChildren();
    let i = 0, j = 0, changes = 0;
    const add = (tag, text) => {
      const el = document.createElement(tag);
      el.textContent = text;
      box.appendChild(el);
    };
    while (i < a.length || j < b.length) {
      if (i < a.length && j < b.length && a[i] === b[j]) { add("span", a[i]); i++; j++; }
      else if (j < b.length && (i === a.length || table[i][j + 1] >= table[i + 1][j])) { add("ins", b[j]); j++; changes++; }
      else { add("del", a[i]); i++; changes++; }
    }
    box.dataset.changes = String(changes);
  }

  function fillCorrection() {
    const of = $("input[name=correction_of]", state.form);
    if (!of) return;
    const card = state.lastEdited;
    const area = card && $(".edit-text", card);
    const changed = area && area.value.trim() && area.value !== area.dataset.original;
    of.value = changed ? card.dataset.id : "";
    $("input[name=correction]", state.form).value = changed ? area.value : "";
  }

  function clearDrafts(assignment) {
    Object.keys(localStorage)
      .filter((k) => k.startsWith(`preflab-draft-${assignment}-`))
      .forEach((k) => localStorage.removeItem(k));
  }

  // ---------------------------------------------------------------- submit
  function showError(message) {
    const el = state && $("#submit-error", state.form);
    if (!el) return;
    el.textContent = message;
    el.hidden = !message;
  }

  // The submit button looks ready (CSS: #submit-btn.ready) once nothing is missing.
  function updateReady() {
    const button = state && $("#submit-btn", state.form);
    if (button) button.classList.toggle("ready", !problems());
  }

  function problems() {
    if (has("ranking") && !rankingComplete()) {
      return "Rank every response first: press their numbers from best to worst.";
    }
    if (has("pairwise") && !$("input[name=choice]:checked", state.form)) {
      return "Choose A, B, tie or both bad first.";
    }
    if (has("rating") && missingRatings().length) {
      return `Rate every response on every dimension (${missingRatings().length} missing).`;
    }
    return "";
  }

  function submit() {
    const problem = problems();
    if (problem) return showError(problem);
    if (state.nextHtml && window.fetch) return submitInBackground();
    state.form.requestSubmit();
  }

  function submitInBackground() {
    fillCorrection();
    $("input[name=duration_ms]", state.form).value = String(Date.now() - state.started);
    const body = new URLSearchParams(new FormData(state.form));
    body.set("only", "undo");
    const pending = { url: state.form.getAttribute("hx-post"), body: body.toString(), assignment: state.assignment, mode: "undo" };
    const counter = () => document.querySelector("[data-testid=done-today]");
    const done = Number(counter().textContent) + 1;
    track(pending.assignment, true);
    swapWorkspace(state.nextHtml);
    counter().textContent = String(done);
    sending = send(pending).catch(() => queuePending(pending));
  }

  function send(pending) {
    return fetch(pending.url, {
      method: "POST", body: pending.body, credentials: "same-origin",
      headers: { "HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded" },
    }).then((response) => {
      if (response.status >= 500) throw new Error("server error " + response.status);
      return response.text().then((html) => {
        track(pending.assignment, false);
        clearDrafts(pending.assignment);
        if (response.headers.get("HX-Retarget")) {
          const b = banner();
          b.textContent = "Your last judgement was not saved: " + html + " Reload the page to see that item again.";
          b.hidden = false;
          return;
        }
        if (pending.mode === "undo") {
          const slot = document.getElementById("undo-slot");
          if (slot) { slot.innerHTML = html; if (window.htmx) htmx.process(slot); initUndo(); }
        } else swapWorkspace(html);
      });
    });
  }

  document.addEventListener("submit", function (event) {
    if (!state || event.target !== form()) return;
    const problem = problems();
    if (problem) {
      event.preventDefault();
      event.stopImmediatePropagation();
      showError(problem);
      return;
    }
    fillCorrection();
    $("input[name=duration_ms]", state.form).value = String(Date.now() - state.started);
  }, true);

  // ---------------------------------------------------------------- keyboard
  function openDialog(id) {
    const dialog = document.getElementById(id);
    if (dialog && !dialog.open) {
      dialog.showModal();
      const first = $("select, input:not([type=hidden]), button", dialog);
      if (first) first.focus();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey && event.key === "Enter" && state && event.target.closest && event.target.closest("#judge-form")) {
      event.preventDefault();
      return submit();
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (document.querySelector("dialog[open]")) return;
    const target = event.target;
    if (state && rateFocused(event)) return event.preventDefault();
    if (event.key === "Enter" && state && target.matches && target.matches("#judge-form input[type=radio], #judge-form input[type=checkbox]")) {
      event.preventDefault();
      return submit();
    }
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    const key = event.key;
    if (key === "?") return openDialog("help-dialog");
    if (key === "g") return openDialog("guidelines-dialog");
    if (key === "u" && $("#undo-btn")) return $("#undo-btn").click();
    if (!state || state.form !== form()) return;
    if (state.editPending && /^[1-9]$/.test(key)) {
      state.editPending = false;
      const card = $$(".candidate", state.form)[Number(key) - 1];
      if (card && $(".editor", card)) openEditor(card, true);
      return event.preventDefault();
    }
    state.editPending = false;
    if (key === "Enter" && !target.closest("button, a, summary")) {
      event.preventDefault();
      return submit();
    }
    if (key === "s") return openDialog("skip-dialog");
    if (key === "e" && $(".editor", state.form)) { state.editPending = true; return; }
    if (key === "f") {
      const extras = $("details.extras", state.form);
      extras.open = true;
      $("input[name=flags]", extras).focus();
      return event.preventDefault();
    }
    if (has("pairwise")) {
      const map = { a: "a", b: "b", 1: "a", 2: "b", t: "tie", x: "both_bad" };
      if (map[key]) { choose(map[key]); showError(""); return event.preventDefault(); }
      if (key === "m") return toggleStrength();
    }
    if (has("ranking")) {
      if (/^[1-9]$/.test(key)) { pick(Number(key)); return event.preventDefault(); }
      if (key === "t") return toggleTie();
      if (key === "Backspace") {
        if (state.dragged) resetRanking();
        else { state.groups.pop(); renderRanking(); }
        return event.preventDefault();
      }
      if (key === "Escape") return resetRanking();
    }
  });

  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-open]");
    if (opener) openDialog(opener.dataset.open);
    const closer = event.target.closest("[data-close]");
    if (closer) closer.closest("dialog").close();
  });

  // ---------------------------------------------------------------- undo
  function initUndo() {
    const bar = document.getElementById("undo-form");
    if (!bar || bar.dataset.ready) return;
    bar.dataset.ready = "1";
    if (window.htmx) htmx.process(bar);
    const until = Date.now() + Number(bar.dataset.seconds) * 1000;
    const label = $("[data-countdown]", bar);
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0 || !bar.isConnected) return bar.remove();
      label.textContent = left + " s";
      setTimeout(tick, 250);
    };
    tick();
  }

  // ---------------------------------------------------------------- offline resend
  const banner = () => document.getElementById("offline-banner");

  function pendingFromForm(elt) {
    const data = new URLSearchParams(new FormData(elt));
    return { url: elt.getAttribute("hx-post"), body: data.toString(), assignment: elt.dataset.assignment, mode: "workspace" };
  }

  // Unsent judgements wait in localStorage, oldest first, until the server takes them; the
  // client UUID in each makes a resend after a partial success harmless.
  function pendingList() {
    return JSON.parse(localStorage.getItem(PENDING_KEY) || "[]");
  }

  function savePending(list) {
    if (list.length) localStorage.setItem(PENDING_KEY, JSON.stringify(list));
    else localStorage.removeItem(PENDING_KEY);
  }

  let resendTimer = null;
  function scheduleResend() {
    if (!resendTimer) resendTimer = setTimeout(resendPending, 3000);
  }

  function queuePending(pending) {
    track(pending.assignment, true);
    const list = pendingList();
    if (!list.some((p) => p.body === pending.body)) list.push(pending);
    savePending(list);
    const b = banner();
    b.textContent = `The server cannot be reached. ${list.length === 1 ? "Your judgement is" : list.length + " judgements are"} kept in this browser and will be sent as soon as it is back.`;
    b.hidden = false;
    scheduleResend();
  }

  function resendPending() {
    resendTimer = null;
    const first = pendingList()[0];
    if (!first) return;
    track(first.assignment, true);
    send(first).then(() => {
      const rest = pendingList().filter((p) => p.body !== first.body);
      savePending(rest);
      if (rest.length) return resendPending();
      if (!banner().textContent.startsWith("Your last judgement was not saved")) banner().hidden = true;
    }).catch(scheduleResend);
  }

  document.addEventListener("htmx:sendError", function (event) {
    if (event.detail.elt === form()) queuePending(pendingFromForm(event.detail.elt));
  });
  document.addEventListener("htmx:responseError", function (event) {
    const status = event.detail.xhr.status;
    if (event.detail.elt === form() && status >= 500) queuePending(pendingFromForm(event.detail.elt));
    else if (state) showError("The server answered with an error (" + status + "). Your work is kept: try again.");
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt === form() && event.detail.successful && state) {
      const retargeted = event.detail.xhr.getResponseHeader("HX-Retarget");
      if (!retargeted) clearDrafts(state.assignment);
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id === "submit-error") event.detail.target.hidden = false;
    init();
  });

  function start() {
    document.body.dataset.inflight = "0";
    pendingList().forEach((p) => track(p.assignment, true));
    init();
    resendPending();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
