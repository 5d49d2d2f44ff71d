// The dashboard's JSON routes; every call goes through the host's client on the server.

const BASE = "/dashboard/api";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(BASE + path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const enc = encodeURIComponent;

/** Query string of the list filters: {status: [..], name, prefix, from, to}. */
export function filterQuery(filters, extra = {}) {
  const q = new URLSearchParams();
  if (filters.status && filters.status.length) q.set("status", filters.status.join(","));
  for (const key of ["name", "prefix", "from", "to"]) if (filters[key]) q.set(key, filters[key]);
  for (const [key, value] of Object.entries(extra)) if (value) q.set(key, value);
  return q.toString();
}

export const api = {
  info: () => call("GET", "/info"),
  instances: (filters, top, token) => call("GET", `/instances?${filterQuery(filters, { top, token })}`),
  counts: (filters) => call("GET", `/counts?${filterQuery(filters)}`),
  instance: (id) => call("GET", `/instances/${enc(id)}`),
  start: (name, input, instanceId) => call("POST", `/orchestrators/${enc(name)}`, { input, instanceId }),
  raiseEvent: (id, name, data) => call("POST", `/instances/${enc(id)}/raise-event`, { name, data }),
  terminate: (id, reason) => call("POST", `/instances/${enc(id)}/terminate`, { reason }),
  suspend: (id, reason) => call("POST", `/instances/${enc(id)}/suspend`, { reason }),
  resume: (id, reason) => call("POST", `/instances/${enc(id)}/resume`, { reason }),
  purge: (id) => call("POST", `/instances/${enc(id)}/purge`, {}),
  bulk: (action, filters, dryRun) => call("POST", `/bulk/${action}`, { ...filters, dryRun }),
  entities: (name, token) => call("GET", `/entities?${filterQuery({}, { name, token })}`),
  signalEntity: (name, key, operation, input) => call("POST", "/entities/signal", { name, key, operation, input }),
};
