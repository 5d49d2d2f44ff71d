// One instance: its status, payloads, failure, children, timeline and history.

import { api } from "./api.js";
import * as actions from "./actions.js";
import {
  FINISHED, clear, formatClock, formatDuration, formatTime, h, instanceDuration, jsonBlock,
  shortJson, statusBadge, toast,
} from "./dom.js";
import { state } from "./state.js";
import { renderTimeline } from "./timeline.js";

const REFRESH_MS = 2000;
const MAX_ROWS = 2000;
const EPISODE_EVENTS = new Set(["OrchestratorStarted", "OrchestratorCompleted"]);

export function renderDetail(view, instanceId) {
  let alive = true;
  let timer = null;
  let drawn = null;
  const historyFilter = { type: "", name: "", episodes: false };

  clear(view, h("div", { class: "crumbs" }, h("a", { href: "#/instances" }, "Instances"), " / ", instanceId),
    h("p", { class: "empty" }, "Loading…"));

  async function load() {
    try {
      const document = await api.instance(instanceId);
      if (!alive) return;
      // Re-draw only when something changed, so that a filter being typed keeps its focus.
      const version = [document.instance.runtimeStatus, document.instance.lastUpdatedTime,
        document.history.length, document.children.map((c) => c.runtimeStatus).join()].join("|");
      if (version !== drawn) render(document);
      drawn = version;
      clearTimeout(timer);
      if (!FINISHED.has(document.instance.runtimeStatus)) timer = setTimeout(load, REFRESH_MS);
    } catch (exc) {
      if (!alive) return;
      if (exc.status === 404) {
        clear(view, h("div", { class: "crumbs" }, h("a", { href: "#/instances" }, "Instances"), " / ", instanceId),
          h("div", { class: "panel empty", "data-testid": "not-found" },
            h("h3", {}, "No such instance"), `There is no instance ${instanceId} (any more).`));
      } else {
        toast(exc.message, "error");
      }
    }
  }

  async function act(action) {
    if (await action(instanceId)) {
      if (action === actions.purge) { location.hash = "#/instances"; return; }
      load();
    }
  }

  function actionButtons(status) {
    if (state.info && state.info.readOnly) return null;
    const finished = FINISHED.has(status);
    const buttons = [];
    if (!finished) {
      buttons.push(h("button", { "data-testid": "action-raise", onclick: () => act(actions.raiseEvent) }, "Raise event"));
      if (status === "Suspended") buttons.push(h("button", { "data-testid": "action-resume", onclick: () => act(actions.resume) }, "Resume"));
      else buttons.push(h("button", { "data-testid": "action-suspend", onclick: () => act(actions.suspend) }, "Suspend"));
      buttons.push(h("button", { class: "danger", "data-testid": "action-terminate", onclick: () => act(actions.terminate) }, "Terminate"));
    } else {
      buttons.push(h("button", { class: "danger", "data-testid": "action-purge", onclick: () => act(actions.purge) }, "Purge"));
    }
    return h("div", { class: "actions" }, buttons);
  }

  function fact(label, value, testid) {
    return h("div", {}, h("dt", {}, label), h("dd", { "data-testid": testid, title: typeof value === "string" ? value : null }, value || "—"));
  }

  function failurePanel(failure) {
    const chain = [];
    for (let f = failure; f; f = f.inner) chain.push(f);
    return h("section", { class: "panel failure", "data-testid": "failure" },
      h("h2", {}, "Failure"),
      h("div", { class: "body" }, chain.map((f, i) => h("div", {},
        h("div", { class: "message" }, i ? "caused by " : "", `${f.errorType}: ${f.errorMessage}`),
        f.stackTrace ? h("pre", { class: "json", "data-testid": "stack-trace" }, f.stackTrace) : null))));
  }

  // One line per event: key=value pairs, a failure as "Type: message" (its stack in the tooltip).
  function summary(details) {
    return Object.entries(details).map(([key, value]) => {
      if (value && typeof value === "object" && "errorType" in value) return `${key}: ${value.errorType}: ${value.errorMessage}`;
      return `${key}=${shortJson(value, 90)}`;
    }).join("  ");
  }

  function historyPanel(history) {
    const types = [...new Set(history.map((e) => e.eventType))].sort();
    const typeSelect = h("select", { "data-testid": "history-type" },
      h("option", { value: "" }, "All event types"), types.map((t) => h("option", { value: t }, t)));
    typeSelect.value = historyFilter.type;
    const nameInput = h("input", { type: "text", placeholder: "Name contains", "data-testid": "history-name" });
    nameInput.value = historyFilter.name;
    const episodes = h("input", { type: "checkbox", checked: historyFilter.episodes });
    const count = h("span", { class: "count", "data-testid": "history-count" });
    const tbody = h("tbody", { "data-testid": "history-rows" });
    const start = history.length ? Date.parse(history[0].timestamp) : 0;
    // Completions name no function; show the name of the step they complete.
    const scheduledNames = new Map(history.filter((e) => e.eventId !== null).map((e) => [e.eventId, e.name]));
    const nameOf = (e) => e.name || (e.taskScheduledId !== null ? scheduledNames.get(e.taskScheduledId) : null) || "";

    const fill = () => {
      historyFilter.type = typeSelect.value;
      historyFilter.name = nameInput.value;
      historyFilter.episodes = episodes.checked;
      const needle = historyFilter.name.trim().toLowerCase();
      const shown = history.filter((e) =>
        (!historyFilter.type || e.eventType === historyFilter.type) &&
        (historyFilter.type || historyFilter.episodes || !EPISODE_EVENTS.has(e.eventType)) &&
        (!needle || nameOf(e).toLowerCase().includes(needle)));
      count.textContent = `${shown.length} of ${history.length} events` +
        (shown.length > MAX_ROWS ? `, the first ${MAX_ROWS} shown` : "");
      clear(tbody, shown.slice(0, MAX_ROWS).map((e) => h("tr", { "data-testid": "history-row", dataset: { type: e.eventType } },
        h("td", { class: "num" }, e.index),
        h("td", { class: "time" }, formatClock(e.timestamp)),
        h("td", { class: "num time" }, `+${formatDuration(Date.parse(e.timestamp) - start)}`),
        h("td", { class: `etype${EPISODE_EVENTS.has(e.eventType) ? " muted" : ""}` }, e.eventType),
        h("td", { class: e.name ? "" : "sub" }, nameOf(e)),
        h("td", { class: "num" }, e.eventId ?? e.taskScheduledId ?? ""),
        h("td", { class: "details", title: JSON.stringify(e.details, null, 2) }, summary(e.details)))));
    };
    typeSelect.addEventListener("change", fill);
    nameInput.addEventListener("input", fill);
    episodes.addEventListener("change", fill);
    fill();
    return h("section", { class: "panel", "data-testid": "history" },
      h("h2", {}, "History"),
      h("div", { class: "hist-filters" }, typeSelect, nameInput,
        h("label", { class: "check" }, episodes, "episode markers"), count),
      h("div", { class: "hist-table" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "Time"), h("th", { class: "num" }, "Offset"),
          h("th", {}, "Event type"), h("th", {}, "Name"), h("th", { class: "num" }, "Id"), h("th", {}, "Details"))),
        tbody)));
  }

  function render(document) {
    const it = document.instance;
    const scroll = window.scrollY;
    const parent = it.parentInstanceId
      ? h("a", { href: `#/instances/${encodeURIComponent(it.parentInstanceId)}`, "data-testid": "parent-link" }, it.parentInstanceId)
      : null;
    const children = document.children.length
      ? h("section", { class: "panel", "data-testid": "children" }, h("h2", {}, `Sub-orchestrations (${document.children.length})`),
        h("div", { class: "body children" }, document.children.map((c) => h("span", {},
          h("a", { href: `#/instances/${encodeURIComponent(c.instanceId)}`, "data-testid": "child-link" }, c.instanceId),
          " ", c.runtimeStatus ? statusBadge(c.runtimeStatus) : h("span", { class: "sub" }, "purged")))))
      : null;
    clear(view,
      h("div", { class: "crumbs" }, h("a", { href: "#/instances" }, "Instances"), " / ",
        h("a", { href: `#/instances?name=${encodeURIComponent(it.name)}` }, it.name)),
      h("div", { class: "detail-head" },
        h("h1", { "data-testid": "instance-id" }, it.instanceId),
        statusBadge(it.runtimeStatus, true),
        actionButtons(it.runtimeStatus)),
      h("section", { class: "panel" }, h("div", { class: "body" }, h("dl", { class: "facts" },
        fact("Name", it.name, "fact-name"),
        fact("Created", formatTime(it.createdTime)),
        fact("Last updated", formatTime(it.lastUpdatedTime)),
        fact("Duration", instanceDuration(it, Date.parse(document.now))),
        fact("Parent", parent, "fact-parent"),
        fact("Scheduled start", it.scheduledStartTime ? formatTime(it.scheduledStartTime) : null),
        fact("History events", String(document.history.length)),
        fact("Sub-orchestrations", String(document.children.length))))),
      it.failure ? failurePanel(it.failure) : null,
      h("section", { class: "panel" }, h("h2", {}, "Timeline"),
        h("div", { class: "body" }, renderTimeline(document.timeline, document.now))),
      h("div", { class: "grid three" },
        h("section", { class: "panel" }, h("h2", {}, "Input"), h("div", { class: "body" }, jsonBlock(it.input, "input"))),
        h("section", { class: "panel" }, h("h2", {}, "Output"), h("div", { class: "body" }, jsonBlock(it.failure ? null : it.output, "output"))),
        h("section", { class: "panel" }, h("h2", {}, "Custom status"), h("div", { class: "body" }, jsonBlock(it.customStatus, "custom-status")))),
      children,
      historyPanel(document.history));
    window.scrollTo(0, scroll);
  }

  load();
  return () => { alive = false; clearTimeout(timer); };
}
