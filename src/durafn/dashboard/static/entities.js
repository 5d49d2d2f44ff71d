// Entities: instances whose id is "@name@key", as Durable Functions addresses entities.

import { api } from "./api.js";
import { clear, formatTime, h, shortJson, statusBadge, toast } from "./dom.js";

function parseEntityId(id) {
  const rest = id.slice(1);
  const at = rest.indexOf("@");
  return at < 0 ? { name: rest, key: "" } : { name: rest.slice(0, at), key: rest.slice(at + 1) };
}

export function renderEntities(view) {
  let alive = true;
  const body = h("div", { class: "panel", "data-testid": "entities" }, h("p", { class: "empty" }, "Loading…"));
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Entities"),
      h("span", { class: "sub" }, "small stateful objects addressed by name and key")),
    body);

  async function load() {
    try {
      const page = await api.instances({ status: [], prefix: "@" }, 200, null);
      if (!alive) return;
      if (!page.instances.length) {
        clear(body, h("div", { class: "empty", "data-testid": "no-entities" },
          h("h3", {}, "No entities"),
          h("p", {}, "No entity has been used in this task hub yet. An entity shows up here once an ",
            "operation has been signalled to it; its id is ", h("code", {}, "@name@key"), ".")));
        return;
      }
      clear(body, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Entity"), h("th", {}, "Key"), h("th", {}, "Status"),
          h("th", {}, "Last updated"), h("th", {}, "State"))),
        h("tbody", {}, page.instances.map((item) => {
          const { name, key } = parseEntityId(item.instanceId);
          return h("tr", { "data-testid": "entity-row" },
            h("td", {}, h("a", { href: `#/instances/${encodeURIComponent(item.instanceId)}` }, name)),
            h("td", { class: "id" }, key),
            h("td", {}, statusBadge(item.runtimeStatus)),
            h("td", { class: "time" }, formatTime(item.lastUpdatedTime)),
            h("td", { class: "clip" }, shortJson(item.customStatus)));
        }))),
      page.continuationToken ? h("div", { class: "pager" }, "Showing the first 200 entities.") : null);
    } catch (exc) {
      toast(exc.message, "error");
    }
  }
  load();
  return () => { alive = false; };
}
