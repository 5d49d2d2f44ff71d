// Small helpers shared by every page: building elements, formatting times, status badges.

/** h("a", {href: "#"}, "text", child) builds an element; strings become text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return el;
}

export function statusBadge(status, big = false) {
  return h("span", { class: `status st-${status}${big ? " big" : ""}`, "data-testid": "status" }, status);
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Local time, "2026-11-22 07:04:58". */
export function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local time of day with milliseconds, for history rows. */
export function formatClock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export const FINISHED = new Set(["Completed", "Failed", "Canceled", "Terminated"]);

/** How long an instance ran: to its last update once finished, to now while it runs. */
export function instanceDuration(row, now = Date.now()) {
  const start = Date.parse(row.createdTime);
  const end = FINISHED.has(row.runtimeStatus) ? Date.parse(row.lastUpdatedTime) : now;
  return formatDuration(end - start);
}

export function formatNumber(n) {
  return Number(n || 0).toLocaleString("en-US");
}

/** A value as indented JSON text (strings too, so that quotes show what they are). */
export function jsonText(value) {
  return JSON.stringify(value, null, 2);
}

/** A short one-line JSON rendering for table cells. */
export function shortJson(value, limit = 120) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > limit ? text.slice(0, limit - 1) + "…" : text;
}

export function jsonBlock(value, testid) {
  if (value === null || value === undefined) {
    return h("pre", { class: "json none", "data-testid": testid }, "null");
  }
  return h("pre", { class: "json", "data-testid": testid }, jsonText(value));
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}`, role: "status", "data-testid": "toast" }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 7000 : 3500);
}

/** "#/instances?status=Running" -> {path: ["instances"], params: URLSearchParams}. */
export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { path: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}
