// The dashboard's entry point: reads the host's description, then routes on the URL's hash.

import { api } from "./api.js";
import { startOrchestration } from "./actions.js";
import { renderDetail } from "./detail.js";
import { renderEntities } from "./entities.js";
import { parseHash, toast } from "./dom.js";
import { renderInstances } from "./instances.js";
import { state } from "./state.js";

const view = document.getElementById("view");
let leave = () => {};

function route() {
  leave();
  const { path, params } = parseHash();
  const section = path[0] || "instances";
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === section);
  }
  view.dataset.page = section;
  delete view.dataset.loaded;
  if (section === "instances" && path[1]) {
    view.dataset.page = "instance";
    leave = renderDetail(view, path[1]);
  } else if (section === "entities") {
    leave = renderEntities(view, params);
  } else {
    leave = renderInstances(view, params);
  }
  window.scrollTo(0, 0);
}

async function boot() {
  // The key came in the URL (?code=...); the server keeps it in a cookie: drop it from sight.
  if (new URLSearchParams(location.search).has("code")) {
    history.replaceState(null, "", location.pathname + location.hash);
  }
  try {
    state.info = await api.info();
  } catch (exc) {
    toast(`Cannot reach the host: ${exc.message}`, "error");
    state.info = { taskHub: "?", readOnly: true, orchestrators: [] };
  }
  document.getElementById("hub").textContent = `task hub: ${state.info.taskHub}`;
  document.getElementById("readonly").hidden = !state.info.readOnly;
  const start = document.getElementById("start-button");
  start.hidden = state.info.readOnly;
  start.addEventListener("click", startOrchestration);
  window.addEventListener("hashchange", route);
  route();
}

boot();
