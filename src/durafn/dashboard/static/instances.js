// The instance list: counts per status, filters, a server-side paged table, live refresh.

import { api } from "./api.js";
import * as actions from "./actions.js";
import {
  clear, formatNumber, formatTime, h, instanceDuration, shortJson, statusBadge, toast,
} from "./dom.js";
import { state } from "./state.js";

const STATUSES = ["Pending", "Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Suspended"];
const REFRESH_MS = 3000;

/** Filters live in the URL (#/instances?status=Running&name=...), so a view can be shared. */
function filtersFrom(params) {
  return {
    status: (params.get("status") || "").split(",").filter(Boolean),
    name: params.get("name") || "",
    prefix: params.get("prefix") || "",
    from: params.get("from") || "",
    to: params.get("to") || "",
  };
}

function hashFor(filters) {
  const q = new URLSearchParams();
  if (filters.status.length) q.set("status", filters.status.join(","));
  for (const key of ["name", "prefix", "from", "to"]) if (filters[key]) q.set(key, filters[key]);
  const text = q.toString();
  return `#/instances${text ? "?" + text : ""}`;
}

function describe(filters) {
  const parts = [];
  if (filters.status.length) parts.push(`status ${filters.status.join(" or ")}`);
  if (filters.name) parts.push(`name ${filters.name}`);
  if (filters.prefix) parts.push(`id starting with "${filters.prefix}"`);
  if (filters.from) parts.push(`created from ${formatTime(filters.from)}`);
  if (filters.to) parts.push(`created to ${formatTime(filters.to)}`);
  return parts.length ? parts.join(", ") : "no filter (every instance)";
}

// <input type="datetime-local"> speaks local time without a zone; the API takes UTC.
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 19);
}
function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : "";
}

export function renderInstances(view, params) {
  const filters = filtersFrom(params);
  const page = { tokens: [null], index: 0, size: Number(params.get("top")) || 50 };
  let timer = null;
  let busy = false;
  let alive = true;

  const tabs = h("div", { class: "tabs", "data-testid": "status-tabs" });
  const tbody = h("tbody", { "data-testid": "instance-rows" });
  const pagerText = h("span", { "data-testid": "pager-text" });
  const prev = h("button", { onclick: () => go(page.index - 1), "data-testid": "prev-page" }, "← Newer");
  const next = h("button", { onclick: () => go(page.index + 1), "data-testid": "next-page" }, "Older →");
  const updated = h("span", { class: "sub", "data-testid": "updated" });
  const live = h("input", { type: "checkbox", checked: true, "data-testid": "live" });
  const table = h("table", { class: "instances" },
    h("thead", {}, h("tr", {},
      h("th", {}, "Instance ID"), h("th", {}, "Name"), h("th", {}, "Status"),
      h("th", {}, "Created"), h("th", {}, "Last updated"), h("th", { class: "num" }, "Duration"),
      h("th", {}, "Custom status"))),
    tbody);

  const nameInput = h("input", { type: "text", name: "name", placeholder: "any", list: "orchestrator-names", value: filters.name, "data-testid": "filter-name" });
  const prefixInput = h("input", { type: "text", name: "prefix", placeholder: "any", value: filters.prefix, "data-testid": "filter-prefix" });
  const fromInput = h("input", { type: "datetime-local", step: "1", value: toLocalInput(filters.from), "data-testid": "filter-from" });
  const toInput = h("input", { type: "datetime-local", step: "1", value: toLocalInput(filters.to), "data-testid": "filter-to" });
  const readOnly = state.info && state.info.readOnly;

  // Going to the address already shown fires no hashchange: draw the page again then.
  const navigate = (hash) => {
    if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = hash;
  };
  const apply = (event) => {
    if (event) event.preventDefault();
    navigate(hashFor({
      status: filters.status,
      name: nameInput.value.trim(),
      prefix: prefixInput.value.trim(),
      from: fromLocalInput(fromInput.value),
      to: fromLocalInput(toInput.value),
    }));
  };
  const filterForm = h("form", { class: "filters", onsubmit: apply, "data-testid": "filters" },
    h("label", { class: "field" }, "Name", nameInput),
    h("label", { class: "field" }, "Instance id prefix", prefixInput),
    h("label", { class: "field" }, "Created from", fromInput),
    h("label", { class: "field" }, "Created to", toInput),
    h("button", { type: "submit", class: "primary", "data-testid": "apply-filters" }, "Apply"),
    h("button", { type: "button", onclick: () => navigate("#/instances") }, "Clear"),
    h("datalist", { id: "orchestrator-names" },
      (state.info ? state.info.orchestrators : []).map((n) => h("option", { value: n }))));

  clear(view,
    h("div", { class: "page-head" },
      h("h1", {}, "Instances"),
      updated,
      h("span", { class: "spacer" }),
      h("label", { class: "check" }, live, "Live refresh"),
      readOnly ? null : h("div", { class: "bulk" },
        h("button", { type: "button", class: "danger", "data-testid": "bulk-terminate",
          title: "Terminate every unfinished instance the filters match", onclick: () => bulk("terminate") },
          "Terminate matching…"),
        h("button", { type: "button", class: "danger", "data-testid": "bulk-purge",
          title: "Purge every finished instance the filters match", onclick: () => bulk("purge") },
          "Purge matching…"))),
    tabs,
    h("div", { class: "panel" }, filterForm, table,
      h("div", { class: "pager" }, pagerText, h("span", { class: "spacer" }), prev, next)));

  async function bulk(action) {
    if (await actions.bulk(action, filters, describe(filters))) { countsDueAt = 0; load(); }
  }

  function renderTabs(counts) {
    const selected = new Set(filters.status);
    const tab = (label, status, n) => {
      const active = status === null ? selected.size === 0 : selected.has(status);
      const el = h("button", {
        type: "button",
        class: `tab${active ? " active" : ""}${n === 0 ? " zero" : ""}${status ? " st-" + status : ""}`,
        "data-testid": `tab-${status || "All"}`,
        onclick: () => {
          location.hash = hashFor({ ...filters, status: status === null || active ? [] : [status] });
        },
      }, status ? h("span", { class: "dot" }) : null, label, h("span", { class: "n" }, formatNumber(n)));
      return el;
    };
    clear(tabs, tab("All", null, counts.total), STATUSES.map((s) => tab(s, s, counts.counts[s])));
  }

  function row(item) {
    const link = `#/instances/${encodeURIComponent(item.instanceId)}`;
    return h("tr", { "data-testid": "instance-row", dataset: { id: item.instanceId, status: item.runtimeStatus } },
      h("td", { class: "id" }, h("a", { href: link, title: item.instanceId }, item.instanceId)),
      h("td", {}, item.name),
      h("td", {}, statusBadge(item.runtimeStatus)),
      h("td", { class: "time" }, formatTime(item.createdTime)),
      h("td", { class: "time" }, formatTime(item.lastUpdatedTime)),
      h("td", { class: "num time" }, instanceDuration(item)),
      h("td", { class: "clip", title: shortJson(item.customStatus, 2000) }, shortJson(item.customStatus)));
  }

  // The list and the counts load side by side; the counts read every matching instance, so on
  // a large task hub they are refreshed less often than the page.
  let countsDueAt = 0;
  let countsBusy = false;

  async function loadCounts() {
    if (countsBusy || !alive || Date.now() < countsDueAt) return;
    countsBusy = true;
    const started = performance.now();
    try {
      const counts = await api.counts(filters);
      if (!alive) return;
      lastCounts = counts;
      renderTabs(counts);
      renderPager();
    } catch (exc) {
      toast(exc.message, "error");
    } finally {
      countsBusy = false;
      countsDueAt = Date.now() + Math.max(REFRESH_MS, 10 * (performance.now() - started));
    }
  }

  let lastCounts = null;
  let lastRows = 0;

  function renderPager() {
    const first = page.index * page.size + 1;
    const matching = !lastCounts ? null : filters.status.length
      ? filters.status.reduce((sum, s) => sum + (lastCounts.counts[s] || 0), 0) : lastCounts.total;
    const of = matching === null ? "" : ` of ${formatNumber(matching)}`;
    pagerText.textContent = lastRows ? `${formatNumber(first)}–${formatNumber(first + lastRows - 1)}${of}` : "";
  }

  async function load() {
    if (busy || !alive) return;
    busy = true;
    table.classList.add("loading");
    const started = performance.now();
    const counting = loadCounts();
    try {
      const list = await api.instances(filters, page.size, page.tokens[page.index]);
      if (!alive) return;
      if (list.instances.length) clear(tbody, list.instances.map(row));
      else clear(tbody, h("tr", {}, h("td", { colspan: 7, class: "empty", "data-testid": "no-instances" },
        h("h3", {}, "No instances"), "No instance matches these filters.")));
      page.tokens[page.index + 1] = list.continuationToken;
      lastRows = list.instances.length;
      renderPager();
      prev.disabled = page.index === 0;
      next.disabled = !list.continuationToken;
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      view.dataset.loadMs = String(Math.round(performance.now() - started));
    } catch (exc) {
      toast(exc.message, "error");
    } finally {
      busy = false;
      table.classList.remove("loading");
    }
    await counting;
  }

  function go(index) {
    if (index < 0 || (index > page.index && !page.tokens[index])) return;
    page.index = index;
    load();
  }

  function schedule() {
    clearInterval(timer);
    if (live.checked) timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  }
  live.addEventListener("change", schedule);
  schedule();
  load();

  return () => { alive = false; clearInterval(timer); };
}
