// The actions on instances, each behind a dialog that says what will happen.

import { api } from "./api.js";
import { formDialog } from "./dialogs.js";
import { h, toast, formatNumber } from "./dom.js";
import { state } from "./state.js";

export async function startOrchestration() {
  const names = state.info ? state.info.orchestrators : [];
  const started = await formDialog({
    title: "Start an orchestration",
    fields: [
      { name: "name", label: "Orchestrator", required: true, options: names, value: names.length === 1 ? names[0] : "" },
      { name: "instanceId", label: "Instance id (optional, generated if empty)" },
      { name: "input", label: "Input (JSON)", kind: "json", placeholder: 'e.g. {"city": "Tokyo"} or null' },
    ],
    confirmLabel: "Start",
    submit: async (values) => (await api.start(values.name, values.input, values.instanceId || null)).id,
  });
  if (started) {
    toast(`Started ${started}`);
    location.hash = `#/instances/${encodeURIComponent(started)}`;
  }
}

export async function raiseEvent(id) {
  const done = await formDialog({
    title: "Raise an event",
    message: h("p", {}, "Send an external event to ", h("code", {}, id), "."),
    fields: [
      { name: "name", label: "Event name", required: true, placeholder: "approval" },
      { name: "data", label: "Data (JSON)", kind: "json", placeholder: 'e.g. {"approved": true}' },
    ],
    confirmLabel: "Raise event",
    submit: async (values) => { await api.raiseEvent(id, values.name, values.data); return values.name; },
  });
  if (done) toast(`Raised ${done} on ${id}`);
  return Boolean(done);
}

function reasonAction(verb, call, danger, explain) {
  return async (id) => {
    const done = await formDialog({
      title: `${verb} instance`,
      message: h("p", {}, explain, " ", h("code", {}, id)),
      fields: [{ name: "reason", label: "Reason (optional)" }],
      confirmLabel: verb,
      danger,
      submit: async (values) => { await call(id, values.reason || null); return true; },
    });
    if (done) toast(`${verb}: ${id}`);
    return Boolean(done);
  };
}

export const terminate = reasonAction("Terminate", api.terminate, true,
  "The instance stops for good and ends as Terminated:");
export const suspend = reasonAction("Suspend", api.suspend, false,
  "The instance keeps its messages but runs no code until resumed:");
export const resume = reasonAction("Resume", api.resume, false, "Run the suspended instance again:");

export async function purge(id) {
  const done = await formDialog({
    title: "Purge instance",
    message: h("p", {}, "Delete the finished instance ", h("code", {}, id), " and its history. This cannot be undone."),
    confirmLabel: "Purge",
    danger: true,
    submit: async () => { await api.purge(id); return true; },
  });
  if (done) toast(`Purged ${id}`);
  return Boolean(done);
}

/** Terminate or purge every instance the filters match, after showing how many that is. */
export async function bulk(action, filters, describe) {
  let preview;
  try {
    preview = await api.bulk(action, filters, true);
  } catch (exc) {
    toast(exc.message, "error");
    return false;
  }
  const count = preview.count;
  const what = action === "terminate" ? "unfinished" : "finished";
  const verb = action === "terminate" ? "Terminate" : "Purge";
  const message = h("div", {},
    h("p", { "data-testid": "bulk-count" },
      h("strong", {}, `${formatNumber(count)} ${what} instance${count === 1 ? "" : "s"}`),
      ` match ${describe}.`),
    count === 0 ? h("p", {}, "Nothing to do.") :
      h("p", {}, action === "purge" ? "They and their histories will be deleted. This cannot be undone."
        : "They will stop for good and end as Terminated."));
  const done = await formDialog({
    title: `${verb} matching instances`,
    message,
    confirmLabel: count === 0 ? "Nothing to do" : `${verb} ${formatNumber(count)}`,
    danger: true,
    submit: async () => {
      if (count === 0) return null;
      return (await api.bulk(action, filters, false)).count;
    },
  });
  if (done !== null && done !== undefined) {
    toast(`${verb === "Purge" ? "Purged" : "Terminated"} ${formatNumber(done)} instance${done === 1 ? "" : "s"}`);
    return true;
  }
  return false;
}
