// The reference web app: a dashboard of every printer of every gateway, and a page per
// printer (chart, print history, commands and their results). Plain DOM, no library.
//
// Safety: every text that came from a printer, a file name or the API is put on the page
// with textContent or an attribute, never parsed as HTML. The token lives in this tab's
// sessionStorage only; a #token=... link is read once and removed from the address bar.
"use strict";

const STALE_S = 90; // no status for this long: the gateway (or the Pi) is not reporting
const REFRESH_MS = 2000;
const STATES = {
  printing: "Printing",
  paused: "Paused",
  idle: "Idle",
  completed: "Finished",
  error: "Error",
  offline: "Offline (unreachable)",
  held_by_other_client: "In use by another app",
};
const STATE_HELP = {
  offline: "The gateway cannot reach the printer: is it on and on the network?",
  held_by_other_client:
    "Another program (the slicer, a phone app) holds the printer's only connection; " +
    "the gateway waits and shows what it can.",
};
const OUTCOMES = { done: "Done", rejected: "Refused", failed: "Failed", expired: "Expired" };
const JOB_OUTCOMES = {
  completed: "Completed", cancelled: "Cancelled", failed: "Failed", interrupted: "Interrupted",
};
const ORIGINS = {
  printer: "from the printer", history: "from earlier prints of this file",
  mixed: "from this print and earlier ones", linear: "from this print's progress",
};
const RANGES = [["1 h", 3600], ["6 h", 6 * 3600], ["24 h", 24 * 3600], ["7 days", 7 * 86400]];

let token = "";
let clockOffsetMs = 0; // server clock minus this browser's, from each answer's Date header
let timer = null;

// ---------------------------------------------------------------- small helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function problem(text) { document.getElementById("problem").textContent = text || ""; }

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const hours = Math.floor(m / 60);
  return hours < 48 ? `${hours} h ${m % 60} min` : `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function ago(ms) {
  const s = Math.max(0, ms / 1000);
  if (s < 5) return "just now";
  return `${duration(s)} ago`;
}

function clockTime(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function dateTime(text) {
  if (!text) return "–";
  const date = new Date(text);
  return date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function temp(t) {
  if (!t) return "–";
  return t.target > 0 ? `${t.current.toFixed(0)} / ${t.target.toFixed(0)} °C` : `${t.current.toFixed(0)} °C`;
}

function nowMs() { return Date.now() + clockOffsetMs; }

function describeCommand(c) {
  const p = c.params || {};
  switch (c.type) {
    case "pause": return "Pause";
    case "resume": return "Resume";
    case "cancel": return "Cancel print";
    case "set_nozzle_temperature": return `Nozzle to ${p.celsius} °C`;
    case "set_bed_temperature": return `Bed to ${p.celsius} °C`;
    case "light": return p.on ? "Light on" : "Light off";
    default: return c.type;
  }
}

// ---------------------------------------------------------------- the API

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
  });
  const date = Date.parse(response.headers.get("Date") || "");
  if (!isNaN(date)) clockOffsetMs = date + 500 - Date.now(); // the header has whole seconds
  if (response.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error(token ? "the API refused this token" : "the API needs its token");
  }
  if (!response.ok) throw new Error(`the API answered HTTP ${response.status}`);
  return response.json();
}

async function sendCommand(gateway, printer, type, params) {
  const created = await api("/v1/commands", {
    method: "POST",
    body: JSON.stringify({ gateway_id: gateway, printer_id: printer, type, params }),
  });
  return created.id;
}

// ---------------------------------------------------------------- the dashboard

function age(p) { return nowMs() - Date.parse(p.received_at); }

function jobLine(p) {
  const job = p.job;
  if (!job || job.remaining_s === null || job.remaining_s === undefined) return "–";
  const eta = job.eta ? ` (done about ${clockTime(new Date(job.eta))})` : "";
  return `${duration(job.remaining_s)}${eta}`;
}

function progressBar(pct) {
  const fill = h("div");
  fill.style.width = `${pct || 0}%`; // through the CSSOM: the CSP allows no style attribute
  return h("div", { class: "bar" }, fill);
}

function card(p, linked) {
  const stale = age(p) > STALE_S * 1000;
  const pct = p.progress_percent;
  const name = (p.printer && p.printer.name) || p.printer_id;
  const model = [p.printer && p.printer.model, p.printer && p.printer.firmware].filter(Boolean).join(" · ");
  const href = `/ui/${encodeURIComponent(p.gateway_id)}/${encodeURIComponent(p.printer_id)}`;
  const active = p.state === "printing" || p.state === "paused";
  return h("article", { class: "printer" + (stale ? " stale" : ""), id: `p-${p.gateway_id}-${p.printer_id}`,
                        "data-printer": p.printer_id },
    h("div", { class: "head" },
      linked ? h("a", { class: "name", href }, name) : h("span", { class: "name" }, name),
      h("span", { class: `state ${p.state}`, title: STATE_HELP[p.state] || null }, STATES[p.state] || p.state)),
    h("div", { class: "muted" }, `${p.gateway_id} / ${p.printer_id}${model ? " · " + model : ""}`),
    active ? progressBar(pct) : null,
    h("div", { class: "facts" },
      active ? h("div", { class: "progress" }, h("span", { class: "label" }, "Progress"),
                 pct === null || pct === undefined ? "–" : `${pct.toFixed(1)} %`) : null,
      active ? h("div", { class: "left" }, h("span", { class: "label" }, "Time left"), jobLine(p)) : null,
      h("div", { class: "nozzle" }, h("span", { class: "label" }, "Nozzle"), temp(p.nozzle)),
      h("div", { class: "bed" }, h("span", { class: "label" }, "Bed"), temp(p.bed)),
      p.file ? h("div", { class: "file" }, h("span", { class: "label" }, "File"), p.file) : null),
    h("div", { class: "seen muted" + (stale ? " stale-note" : "") },
      stale ? `Last update ${ago(age(p))}: the gateway is not reporting, this is old`
            : `Updated ${ago(age(p))}`));
}

async function dashboard(gateway) {
  const view = document.getElementById("view");
  const query = gateway ? `?gateway_id=${encodeURIComponent(gateway)}` : "";
  const body = await api("/v1/printers" + query);
  const grid = h("div", { class: "grid" }, body.printers.map((p) => card(p, true)));
  view.replaceChildren(grid);
  if (!body.printers.length) {
    view.append(h("p", {}, gateway ? `No printer of gateway ${gateway} has reported yet.`
                                   : "No printer has reported yet. Start a gateway with this API's address and token."));
  }
}

// ---------------------------------------------------------------- a printer's page

const pageState = { range: 3600, pending: new Map(), chartAt: 0, listsAt: 0 };

function controls(gateway, p, stale) {
  const state = p.state;
  const can = {
    pause: state === "printing", resume: state === "paused",
    cancel: state === "printing" || state === "paused",
  };
  const offline = stale || state === "offline" || state === "held_by_other_client";
  const run = (type, params = {}) => async () => {
    try {
      const id = await sendCommand(gateway, p.printer_id, type, params);
      pageState.pending.set(id, type);
      pageState.listsAt = 0;
      refresh();
    } catch (err) { problem(`${describeCommand({ type, params })}: ${err.message}`); }
  };
  const confirm = h("div", { class: "confirm", hidden: true, role: "dialog" },
    h("p", {}, `Cancel the print${p.file ? " of " : ""}`, p.file ? h("b", {}, p.file) : "",
      "? It cannot be resumed."),
    h("button", { class: "danger sure", onclick: () => { confirm.hidden = true; run("cancel")(); } }, "Yes, cancel the print"),
    " ",
    h("button", { onclick: () => { confirm.hidden = true; } }, "Keep printing"));
  const number = (id, min, max, value) =>
    h("input", { id, type: "number", min, max, step: 1, value, inputmode: "numeric", "aria-label": id });
  const nozzle = number("nozzle-target", 0, 300, p.nozzle ? Math.round(p.nozzle.target) : 0);
  const bed = number("bed-target", 0, 120, p.bed ? Math.round(p.bed.target) : 0);
  const off = offline ? true : null;
  return h("div", {},
    h("div", { class: "controls" },
      h("button", { disabled: !can.pause || off, onclick: run("pause") }, "Pause"),
      h("button", { disabled: !can.resume || off, onclick: run("resume") }, "Resume"),
      h("button", { class: "danger", disabled: !can.cancel || off, onclick: () => { confirm.hidden = false; } }, "Cancel print…"),
      h("fieldset", {}, h("legend", {}, "Nozzle °C"), nozzle,
        h("button", { disabled: off, onclick: () => run("set_nozzle_temperature", { celsius: Number(nozzle.value) })() }, "Set")),
      h("fieldset", {}, h("legend", {}, "Bed °C"), bed,
        h("button", { disabled: off, onclick: () => run("set_bed_temperature", { celsius: Number(bed.value) })() }, "Set")),
      h("fieldset", {}, h("legend", {}, "Light"),
        h("button", { disabled: off, onclick: run("light", { on: true }) }, "On"),
        h("button", { disabled: off, onclick: run("light", { on: false }) }, "Off"))),
    confirm,
    offline ? h("p", { class: "muted" }, "Commands are off while the printer cannot be reached.") : null);
}

function chart(samples, sinceMs, untilMs) {
  const W = 720, H = 220, L = 40, R = 40, T = 10, B = 24;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "temperatures and progress over time");
  const el = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    svg.append(e);
    return e;
  };
  const temps = samples.flatMap((s) => [s[2], s[3], s[4], s[5]]).filter((v) => v !== null);
  const maxTemp = Math.max(50, ...temps) * 1.1;
  const x = (ms) => L + (W - L - R) * (ms - sinceMs) / Math.max(1, untilMs - sinceMs);
  const yTemp = (c) => T + (H - T - B) * (1 - c / maxTemp);
  const yPct = (p) => T + (H - T - B) * (1 - p / 100);
  el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B });
  el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B });
  for (let i = 0; i <= 4; i++) {
    const c = maxTemp * i / 4;
    el("text", { x: 2, y: yTemp(c) + 4 }).textContent = `${c.toFixed(0)}°`;
    el("text", { x: W - R + 4, y: yPct(25 * i) + 4 }).textContent = `${25 * i}%`;
  }
  for (let i = 0; i <= 4; i++) {
    const ms = sinceMs + (untilMs - sinceMs) * i / 4;
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    const label = el("text", { x: x(ms), y: H - 6, "text-anchor": anchor });
    const span = untilMs - sinceMs;
    label.textContent = span > 2 * 86400000
      ? new Date(ms).toLocaleDateString([], { month: "short", day: "numeric" })
      : span < 600000 ? new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
        : clockTime(new Date(ms));
  }
  // A gap of more than five typical spacings (the printer was off, the Pi was down) breaks
  // the line instead of drawing a straight line across it.
  const spacing = samples.length > 1 ? (samples[samples.length - 1][0] - samples[0][0]) / samples.length : 0;
  const series = [
    ["nozzle", 2, yTemp, ""], ["nozzle", 3, yTemp, " target"],
    ["bed", 4, yTemp, ""], ["bed", 5, yTemp, " target"], ["progress", 6, yPct, ""],
  ];
  for (const [name, column, y, extra] of series) {
    let points = [];
    const flush = () => {
      if (points.length > 1) el("polyline", { class: name + extra, points: points.join(" ") });
      else if (points.length === 1 && !extra) { // a lone point still shows
        const [cx, cy] = points[0].split(",");
        el("circle", { class: name, cx, cy, r: 2 });
      }
      points = [];
    };
    let last = null;
    for (const s of samples) {
      if (s[column] === null) { flush(); continue; }
      if (last !== null && spacing > 0 && s[0] - last > Math.max(5 * spacing, 120000)) flush();
      points.push(`${x(s[0]).toFixed(1)},${y(s[column]).toFixed(1)}`);
      last = s[0];
    }
    flush();
  }
  return svg;
}

async function printerPage(gateway, printerId) {
  const view = document.getElementById("view");
  const body = await api(`/v1/printers?gateway_id=${encodeURIComponent(gateway)}`);
  const p = body.printers.find((q) => q.printer_id === printerId);
  if (!p) {
    view.replaceChildren(h("p", {}, `Printer ${printerId} of gateway ${gateway} has not reported yet.`),
                         h("a", { href: "/ui/" }, "All printers"));
    return;
  }
  const stale = age(p) > STALE_S * 1000;
  let top = document.getElementById("top");
  const fresh = h("div", { id: "top" }, card(p, false), controls(gateway, p, stale));
  const active = document.activeElement;
  const typing = active && active.tagName === "INPUT" && active.closest("#top");
  const confirmOpen = top && top.querySelector(".confirm:not([hidden])");
  if (!top) {
    view.replaceChildren(fresh, h("section", { class: "panel chart", id: "chart" }),
      h("section", { class: "panel", id: "commands" }), h("section", { class: "panel", id: "jobs" }));
  } else if (!typing && !confirmOpen) {
    top.replaceWith(fresh); // never under a person typing a temperature or deciding to cancel
  } else {
    top.querySelector(".printer").replaceWith(card(p, false));
  }
  const info = p.printer || {};
  document.getElementById("where").textContent = `${info.name || printerId} · ${gateway}` +
    (info.serial ? ` · serial ${info.serial}` : "");
  const now = Date.now();
  if (now - pageState.chartAt > 15000) { pageState.chartAt = now; await drawChart(gateway, printerId); }
  if (now - pageState.listsAt > 5000 || pageState.pending.size) {
    pageState.listsAt = now;
    await drawCommands(gateway, printerId);
    await drawJobs(gateway, printerId);
  }
}

async function drawChart(gateway, printerId) {
  const untilMs = nowMs(), sinceMs = untilMs - pageState.range * 1000;
  const path = `/v1/printers/${encodeURIComponent(gateway)}/${encodeURIComponent(printerId)}/statuses` +
    `?since=${encodeURIComponent(new Date(sinceMs).toISOString())}&points=720`;
  const body = await api(path);
  const ranges = h("div", { class: "ranges" }, RANGES.map(([label, seconds]) =>
    h("button", { "aria-pressed": seconds === pageState.range ? "true" : "false",
                  onclick: () => { pageState.range = seconds; pageState.chartAt = 0; refresh(); } }, label)));
  const legend = h("div", { class: "legend" }, h("span", { class: "nozzle" }, "nozzle"),
    h("span", { class: "bed" }, "bed"), h("span", { class: "progress" }, "progress"),
    h("span", { class: "muted" }, "dashed: targets"));
  // A printer heard from for less than the range is drawn over the time it has data for.
  const first = body.statuses.length ? body.statuses[0][0] : sinceMs;
  const fromMs = Math.max(sinceMs, Math.min(first, untilMs - 60000));
  document.getElementById("chart").replaceChildren(h("h2", {}, "Temperatures and progress"), ranges, legend,
    body.statuses.length ? chart(body.statuses, fromMs, untilMs) : h("p", { class: "muted" }, "No statuses in this period."));
}

async function drawCommands(gateway, printerId) {
  const path = `/v1/printers/${encodeURIComponent(gateway)}/${encodeURIComponent(printerId)}/commands?limit=20`;
  const body = await api(path);
  for (const c of body.commands) if (c.outcome) pageState.pending.delete(c.id);
  const rows = body.commands.map((c) => {
    const outcome = c.outcome || "pending";
    const words = c.outcome ? OUTCOMES[c.outcome] || c.outcome : "Waiting for the gateway…";
    return h("tr", { "data-command": c.id },
      h("td", {}, dateTime(c.created_at)), h("td", {}, describeCommand(c)),
      h("td", { class: `outcome-${outcome}`, title: c.detail || null }, words,
        // A done command's detail is the gateway's log line ("M25 sent under control; ...");
        // a person wants to know it took effect. A refusal's detail says why: shown.
        c.outcome === "done" ? h("div", { class: "muted detail" }, "checked on the printer")
          : c.detail ? h("div", { class: "muted detail" }, c.detail) : null));
  });
  document.getElementById("commands").replaceChildren(h("h2", {}, "Commands"),
    rows.length ? h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Asked"),
                    h("th", {}, "Command"), h("th", {}, "Result"))), h("tbody", {}, rows)))
                : h("p", { class: "muted" }, "No commands yet."));
}

async function drawJobs(gateway, printerId) {
  const body = await api(`/v1/jobs?gateway_id=${encodeURIComponent(gateway)}&printer_id=${encodeURIComponent(printerId)}&limit=50`);
  const rows = body.jobs.map((j) => h("tr", {},
    h("td", {}, dateTime(j.started_at)), h("td", { class: "job-file" }, j.file || "–"),
    h("td", { class: `outcome-${j.outcome}` }, JOB_OUTCOMES[j.outcome] || j.outcome),
    h("td", {}, duration(j.print_s)),
    h("td", {}, j.pause_count ? `${j.pause_count} (${duration(j.paused_s)})` : "–")));
  document.getElementById("jobs").replaceChildren(h("h2", {}, "Print history"),
    rows.length ? h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Started"),
                    h("th", {}, "File"), h("th", {}, "Outcome"), h("th", {}, "Printing time"), h("th", {}, "Pauses"))),
                    h("tbody", {}, rows)))
                : h("p", { class: "muted" }, "No finished prints yet."));
}

// ---------------------------------------------------------------- routing

function route() {
  const parts = location.pathname.split("/").filter(Boolean).map((part) => {
    try { return decodeURIComponent(part); } catch { return null; }
  });
  if (parts.includes(null)) return { bad: true };
  return { gateway: parts[1] || null, printer: parts[2] || null };
}

async function refresh() {
  const where = route();
  document.getElementById("clock").textContent = clockTime(new Date());
  try {
    if (where.bad) { problem("This address names no gateway or printer."); return; }
    if (where.printer) await printerPage(where.gateway, where.printer);
    else {
      document.getElementById("where").textContent = where.gateway ? `gateway ${where.gateway}` : "all printers";
      await dashboard(where.gateway);
    }
    document.getElementById("login").hidden = true;
    problem("");
  } catch (err) { problem(err.message); }
}

function start() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem("token", fromHash);
    history.replaceState(null, "", location.pathname); // the token leaves the address bar
  }
  token = sessionStorage.getItem("token") || "";
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    token = document.getElementById("token").value.trim();
    sessionStorage.setItem("token", token);
    refresh();
  });
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
