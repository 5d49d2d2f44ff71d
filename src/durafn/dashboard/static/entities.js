// Entities: small stateful objects addressed by name and key; their state, and signals to them.

import { api } from "./api.js";
import { formDialog } from "./dialogs.js";
import { clear, formatTime, h, jsonBlock, shortJson, toast } from "./dom.js";
import { state } from "./state.js";

const REFRESH_MS = 3000;

export async function signalEntity(entity = {}) {
  const names = state.info ? state.info.entities || [] : [];
  const done = await formDialog({
    title: "Signal an entity",
    message: h("p", {}, "Send a one-way operation. An entity that does not exist yet is created."),
    fields: [
      { name: "name", label: "Entity name", required: true, options: names,
        value: entity.name || (names.length === 1 ? names[0] : "") },
      { name: "key", label: "Key", required: true, value: entity.key || "" },
      { name: "operation", label: "Operation", required: true, placeholder: "add" },
      { name: "input", label: "Input (JSON)", kind: "json", placeholder: "e.g. 5 or null" },
    ],
    confirmLabel: "Signal",
    submit: async (values) => {
      await api.signalEntity(values.name, values.key, values.operation, values.input);
      return values;
    },
  });
  if (done) toast(`Signalled ${done.operation} to @${done.name.toLowerCase()}@${done.key}`);
  return Boolean(done);
}

export function renderEntities(view, params) {
  let alive = true;
  let timer = null;
  let busy = false;
  const readOnly = state.info && state.info.readOnly;
  const page = { tokens: [null], index: 0 };
  const opened = new Set();
  const nameFilter = params.get("name") || "";
  const names = state.info ? state.info.entities || [] : [];

  const body = h("div", { class: "panel", "data-testid": "entities" }, h("p", { class: "empty" }, "Loading…"));
  const select = h("select", { "data-testid": "entity-name", onchange: () => {
    location.hash = select.value ? `#/entities?name=${encodeURIComponent(select.value)}` : "#/entities";
  } }, h("option", { value: "" }, "All entities"), names.map((n) => h("option", { value: n }, n)));
  select.value = nameFilter;
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Entities"),
      h("span", { class: "sub" }, "small stateful objects addressed by name and key"),
      h("span", { class: "spacer" }),
      names.length ? select : null,
      readOnly ? null : h("button", { "data-testid": "signal-entity", onclick: async () => {
        if (await signalEntity({ name: nameFilter })) setTimeout(load, 300);
      } }, "Signal entity…")),
    body);

  function row(entity) {
    const expanded = opened.has(entity.instanceId);
    const toggle = () => {
      if (expanded) opened.delete(entity.instanceId); else opened.add(entity.instanceId);
      load();
    };
    const rows = [h("tr", { "data-testid": "entity-row", dataset: { id: entity.instanceId } },
      h("td", {}, h("button", { class: "link", onclick: toggle, title: "show the state" },
        `${expanded ? "▾" : "▸"} ${entity.name}`)),
      h("td", { class: "id" }, entity.key),
      h("td", { class: "clip", "data-testid": "entity-state", title: shortJson(entity.state, 2000) },
        entity.exists ? shortJson(entity.state) : h("span", { class: "sub" }, "deleted")),
      h("td", { class: "time" }, formatTime(entity.lastModifiedTime)),
      h("td", { class: "id" }, entity.lockedBy
        ? h("a", { href: `#/instances/${encodeURIComponent(entity.lockedBy)}` }, entity.lockedBy) : ""),
      h("td", { class: "num" }, entity.backlogQueueSize || ""),
      h("td", { class: "num" }, readOnly ? null : h("button", { "data-testid": "entity-signal", onclick: async () => {
        if (await signalEntity(entity)) setTimeout(load, 300);
      } }, "Signal…")))];
    if (expanded) {
      rows.push(h("tr", { class: "expanded" }, h("td", { colspan: 7 }, jsonBlock(entity.state, "entity-full-state"))));
    }
    return rows;
  }

  async function load() {
    if (busy || !alive) return;
    busy = true;
    try {
      const result = await api.entities(nameFilter, page.tokens[page.index]);
      if (!alive) return;
      page.tokens[page.index + 1] = result.continuationToken;
      if (!result.entities.length && page.index === 0) {
        clear(body, h("div", { class: "empty", "data-testid": "no-entities" },
          h("h3", {}, "No entities"),
          h("p", {}, "No entity has a state in this task hub yet. An entity shows up here once an ",
            "operation has been signalled to it; its id is ", h("code", {}, "@name@key"), ".")));
        return;
      }
      const prev = h("button", { disabled: page.index === 0, onclick: () => { page.index -= 1; load(); } }, "← Newer");
      const next = h("button", { disabled: !result.continuationToken, onclick: () => { page.index += 1; load(); } }, "Older →");
      clear(body, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Entity"), h("th", {}, "Key"), h("th", {}, "State"),
          h("th", {}, "Last modified"), h("th", {}, "Locked by"), h("th", { class: "num" }, "Queued"), h("th", {}))),
        h("tbody", {}, result.entities.flatMap(row))),
      h("div", { class: "pager" }, `${result.entities.length} entities on this page`, h("span", { class: "spacer" }), prev, next));
    } catch (exc) {
      toast(exc.message, "error");
    } finally {
      busy = false;
    }
  }

  timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  load();
  return () => { alive = false; clearInterval(timer); };
}
