// The timeline (Gantt) of an execution, drawn with positioned divs from the server's lanes.

import { formatClock, formatDuration, h } from "./dom.js";

const KIND_LETTER = { activity: "A", suborchestration: "S", entity: "@", timer: "T", event: "E" };
const KIND_NAME = {
  activity: "activity", suborchestration: "sub-orchestration", entity: "entity operation or lock",
  timer: "timer", event: "external event",
};
const STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000,
  120000, 300000, 600000, 900000, 1800000, 3600000, 7200000, 21600000, 43200000, 86400000];

function tickStep(totalMs) {
  const wanted = totalMs / 8;
  return STEPS.find((s) => s >= wanted) || STEPS[STEPS.length - 1];
}

function tickLabel(ms, step) {
  if (ms === 0) return "0";
  if (step < 1000 && ms < 1000) return `${ms} ms`;
  if (step < 60000) return `${ms / 1000} s`;
  if (step < 3600000) return `${ms / 60000} min`;
  return `${ms / 3600000} h`;
}

export function renderTimeline(timeline, now) {
  const start = Date.parse(timeline.start);
  const end = timeline.running ? Date.parse(now) : Date.parse(timeline.end);
  const total = Math.max(end - start, 1);
  const pos = (t) => `${Math.min(100, Math.max(0, ((t - start) / total) * 100))}%`;
  const width = (a, b) => `${Math.max(0, ((b - a) / total) * 100)}%`;

  if (!timeline.lanes.length && !timeline.markers.length) {
    return h("div", { class: "empty", "data-testid": "timeline-empty" },
      "No activities, timers, sub-orchestrations or events yet.");
  }

  const step = tickStep(total);
  const axis = h("div", { class: "tl-axis" });
  for (let t = 0; t <= total; t += step) {
    const tick = h("span", { class: "tl-tick" }, tickLabel(t, step));
    tick.style.left = pos(start + t);
    axis.append(tick);
  }

  const lanes = h("div", { class: "tl-lanes" });
  for (const lane of timeline.lanes) {
    const track = h("div", { class: "tl-track" });
    for (const span of lane.spans) {
      const a = Date.parse(span.start);
      const b = span.end ? Date.parse(span.end) : end;
      const what = span.label || (span.attempt ? `attempt ${span.attempt}` : span.state);
      const title = `${lane.name}: ${what}, ${span.state}\n${formatClock(span.start)} → ` +
        `${span.end ? formatClock(span.end) : "now"} (${formatDuration(b - a)})`;
      const bar = h("div", {
        class: `tl-bar ${span.state} ${lane.kind}`, title, "data-testid": "timeline-bar",
        dataset: { state: span.state, attempt: span.attempt || "" },
      });
      bar.style.left = pos(a);
      bar.style.width = width(a, b);
      // Number the attempts of a retried step where the bar is wide enough to hold it.
      if (lane.attempts > 1 && span.attempt && (b - a) / total > 0.04) bar.append(h("span", {}, `#${span.attempt}`));
      track.append(bar);
    }
    const label = lane.fireAt ? `timer until ${formatClock(lane.fireAt).slice(0, 8)}` : lane.name;
    const name = lane.instanceId
      ? h("a", { class: "name", href: `#/instances/${encodeURIComponent(lane.instanceId)}`, title: lane.instanceId }, lane.name)
      : h("span", { class: "name", title: label }, label);
    lanes.append(h("div", { class: "tl-lane", "data-testid": "timeline-lane", dataset: { kind: lane.kind } },
      h("div", { class: "tl-label" },
        h("span", { class: `tl-kind ${lane.kind}`, title: KIND_NAME[lane.kind] }, KIND_LETTER[lane.kind] || "?"),
        name,
        lane.attempts > 1 ? h("span", { class: "tl-attempts", "data-testid": "timeline-attempts" }, `${lane.attempts} attempts`) : null),
      track));
  }
  const markerLayer = h("div", { class: "tl-markers" });
  for (const marker of timeline.markers) {
    const line = h("div", { class: "tl-marker", title: `${marker.label} at ${formatClock(marker.at)}` },
      h("span", {}, marker.label));
    line.style.left = pos(Date.parse(marker.at));
    markerLayer.append(line);
  }
  lanes.append(markerLayer);

  const legend = h("div", { class: "tl-legend" },
    [["completed", "completed"], ["failed", "failed"], ["running", "running"], ["backoff", "retry backoff"],
      ["fired", "timer fired"], ["waiting", "waiting"], ["received", "event wait"], ["cancelled", "cancelled"]]
      .map(([cls, label]) => h("span", {}, h("i", { class: `tl-bar ${cls}` }), label)));

  return h("div", { class: "timeline", "data-testid": "timeline" },
    axis, lanes, legend,
    timeline.hiddenLanes ? h("div", { class: "tl-more" }, `${timeline.hiddenLanes} more lanes not shown`) : null);
}
