// Sluice UI: the buttons call the REST API with the token saved in this browser; the log
// of a task attempt follows while the attempt runs.
"use strict";

const TOKEN_KEY = "sluice.api-token";

function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function toast(text, isError) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = false;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.hidden = true; }, isError ? 9000 : 3500);
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = (data && data.error) || response.statusText;
    const hint = data && data.hint ? " — " + data.hint : "";
    throw new Error(response.status + ": " + message + hint);
  }
  return data;
}

const enc = encodeURIComponent;
const runPath = (b) => "/api/v1/dags/" + enc(b.dag) + "/runs/" + enc(b.run);

const actions = {
  trigger: (b) => api("POST", "/api/v1/dags/" + enc(b.dag) + "/runs", {})
    .then((r) => { toast("Triggered " + r.run_id); return "/ui/dags/" + enc(b.dag) + "/runs/" + enc(r.run_id); }),
  pause: (b) => api("PATCH", "/api/v1/dags/" + enc(b.dag), { is_paused: String(b.paused).toLowerCase() !== "true" })
    .then((d) => toast(b.dag + (d.is_paused ? " paused" : " unpaused"))),
  "clear-run": (b) => api("POST", runPath(b) + "/clear", {}).then(() => toast("Cleared the run")),
  "clear-failed": (b) => api("POST", runPath(b) + "/clear", { failed_only: true }).then(() => toast("Cleared failed tasks")),
  "clear-task": (b) => api("POST", runPath(b) + "/clear", { tasks: [b.task] }).then(() => toast("Cleared " + b.task)),
  "clear-downstream": (b) => api("POST", runPath(b) + "/clear", { tasks: [b.task], downstream: true })
    .then(() => toast("Cleared " + b.task + " and downstream")),
  mark: (b) => api("POST", runPath(b) + "/tasks/" + enc(b.task) + "/mark", { state: b.state })
    .then(() => toast("Marked " + b.task + " " + b.state)),
  "backfill-pause": (b) => api("POST", "/api/v1/dags/" + enc(b.dag) + "/backfills/pause").then(() => toast("Backfill paused")),
  "backfill-resume": (b) => api("POST", "/api/v1/dags/" + enc(b.dag) + "/backfills/resume").then(() => toast("Backfill resumed")),
  "backfill-cancel": (b) => api("POST", "/api/v1/dags/" + enc(b.dag) + "/backfills/cancel").then(() => toast("Backfill cancelled")),
};

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action], a[data-action]");
  if (!button) return;
  const name = button.dataset.action;
  if (name === "show-log") {
    event.preventDefault();
    followLog(button.dataset.try);
    return;
  }
  const action = actions[name];
  if (!action) return;
  event.preventDefault();
  // A clear or mark says first what it will run again or set, and waits for a yes.
  if (button.dataset.preview !== undefined) {
    const what = name === "mark"
      ? "Mark " + button.dataset.preview + " " + button.dataset.state + " in " + button.dataset.run +
        "? Tasks after it that it left upstream_failed stay so until cleared (Clear + downstream)."
      : "Clear " + button.dataset.run + "? These task instances run again, on the DAG's current version: " +
        (button.dataset.preview || "none");
    if (!window.confirm(what)) return;
  }
  button.disabled = true;
  try {
    const next = await action(button.dataset);
    setTimeout(() => { if (next) location.href = next; else location.reload(); }, 700);
  } catch (error) {
    toast(error.message, true);
    button.disabled = false;
  }
});

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (form.id === "token-form") {
    event.preventDefault();
    const value = document.getElementById("token").value.trim();
    if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
    // For servers that want the token for reads too: pages are plain navigations.
    document.cookie = "sluice_token=" + value + "; path=/; SameSite=Strict" + (value ? "" : "; max-age=0");
    document.getElementById("token").value = "";
    showTokenState();
    toast(value ? "Token saved in this browser" : "Token removed");
    // A sign-in page: the page it stands for, now with the token.
    if (value && document.getElementById("sign-in")) setTimeout(() => location.reload(), 300);
    return;
  }
  if (form.id === "trigger-form") {
    event.preventDefault();
    // The conf from the form, each value in its param's type (the API checks it again).
    const conf = {};
    try {
      for (const field of form.querySelectorAll("[data-kind]")) {
        const kind = field.dataset.kind;
        if (field.type === "checkbox") conf[field.name] = field.checked;
        else if (kind === "integer" || kind === "number") {
          if (field.value !== "") conf[field.name] = Number(field.value);
        } else if (kind === "string") conf[field.name] = field.value;
        else if (field.value.trim() !== "") conf[field.name] = JSON.parse(field.value);
      }
    } catch (error) {
      toast("A field is not valid JSON: " + error.message, true);
      return;
    }
    const body = { conf };
    const date = form.querySelector("[name=logical_date]").value.trim();
    if (date) body.logical_date = date;
    try {
      const r = await api("POST", "/api/v1/dags/" + enc(form.dataset.dag) + "/runs", body);
      toast("Triggered " + r.run_id);
      setTimeout(() => { location.href = "/ui/dags/" + enc(form.dataset.dag) + "/runs/" + enc(r.run_id); }, 500);
    } catch (error) {
      toast(error.message, true);
    }
    return;
  }
  if (form.id === "backfill-form") {
    event.preventDefault();
    const data = new FormData(form);
    const body = { from: data.get("from"), to: data.get("to"), reprocess: data.get("reprocess") };
    if (data.get("max_active_runs")) body.max_active_runs = Number(data.get("max_active_runs"));
    try {
      const b = await api("POST", "/api/v1/dags/" + enc(form.dataset.dag) + "/backfills", body);
      toast("Backfill started: " + b.total + " interval(s)");
      setTimeout(() => location.reload(), 700);
    } catch (error) {
      toast(error.message, true);
    }
  }
});

function showTokenState() {
  const state = document.getElementById("token-state");
  if (state) state.textContent = token() ? "token set" : "read-only";
}

// The shown attempt's whole log; the <pre> shows it, with the search's matches marked.
let logText = "";

function showLog() {
  const pre = document.getElementById("log");
  if (!pre) return;
  const search = document.getElementById("log-search");
  const query = search ? search.value : "";
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.replaceChildren();
  let matches = 0;
  if (!query) {
    pre.textContent = logText;
  } else {
    // Text nodes and <mark> elements, never HTML parsed from the log.
    const lower = logText.toLowerCase();
    const needle = query.toLowerCase();
    let at = 0;
    for (let hit = lower.indexOf(needle); hit !== -1; hit = lower.indexOf(needle, hit + needle.length)) {
      pre.append(logText.slice(at, hit));
      const mark = document.createElement("mark");
      mark.textContent = logText.slice(hit, hit + needle.length);
      pre.append(mark);
      at = hit + needle.length;
      matches++;
    }
    pre.append(logText.slice(at));
  }
  const counter = document.getElementById("log-matches");
  if (counter) counter.textContent = query ? matches + " match" + (matches === 1 ? "" : "es") : "";
  if (atBottom && !query) pre.scrollTop = pre.scrollHeight;
}

// Follows a task attempt's log: appends what is new every second until the attempt ends.
let following = 0;
async function followLog(tryNumber) {
  const pre = document.getElementById("log");
  if (!pre) return;
  const me = ++following;
  logText = "";
  showLog();
  document.getElementById("log-try").textContent = tryNumber;
  const status = document.getElementById("log-follow");
  let offset = 0;
  for (;;) {
    if (me !== following) return;
    let chunk;
    try {
      chunk = await api("GET", pre.dataset.base + "?try=" + enc(tryNumber) + "&offset=" + offset);
    } catch (error) {
      status.textContent = "(" + error.message + ")";
      return;
    }
    if (chunk.text) {
      logText += chunk.text;
      showLog();
    }
    offset = chunk.next_offset;
    if (chunk.complete) {
      status.textContent = "(complete)";
      pre.dataset.complete = "true";
      return;
    }
    status.textContent = "(following…)";
    if (chunk.next_offset >= chunk.size) await new Promise((r) => setTimeout(r, 1000));
  }
}

document.addEventListener("input", (event) => {
  if (event.target.id === "log-search") showLog();
});

document.addEventListener("change", (event) => {
  if (event.target.id === "log-wrap") {
    document.getElementById("log").classList.toggle("nowrap", !event.target.checked);
  }
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("#log-download");
  if (!button) return;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([logText], { type: "text/plain" }));
  link.download = button.dataset.name.replace(/[^A-Za-z0-9_.-]+/g, "_") + "-try" +
    document.getElementById("log-try").textContent + ".log";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
});

document.addEventListener("DOMContentLoaded", () => {
  showTokenState();
  const pre = document.getElementById("log");
  if (pre) followLog(pre.dataset.try);
});

// Auto-refresh: reloads the page every 10 s while the box is ticked (remembered per browser),
// except while the user types in a form.
(() => {
  const KEY = "sluice.auto-refresh";
  const box = document.getElementById("auto-refresh");
  if (!box) return;
  box.checked = localStorage.getItem(KEY) === "on";
  let timer = null;
  const arm = () => {
    clearInterval(timer);
    if (!box.checked) return;
    timer = setInterval(() => {
      const typing = document.activeElement && ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)
        && document.activeElement !== box;
      if (!typing) location.reload();
    }, 10000);
  };
  box.addEventListener("change", () => { localStorage.setItem(KEY, box.checked ? "on" : "off"); arm(); });
  arm();
})();
