// The monitoring dashboard: instrument picker, time range, one panel per instrument with
// the button channels and the derived beam position. Every view change re-queries the
// series API with max_points ≈ the plot's pixel width and aborts the requests of the
// previous view, so a slow range never holds up the next one.

import { Plot } from "./plot.js";
import { BUTTONS, hasButtons, positionPerBucket, positionPerSample, sameTimes } from "./position.js";
import { fixedView, loadView, rangeOf, saveView } from "./viewstate.js";

const root = document.getElementById("dashboard");
const API_ROOT = root.dataset.apiRoot;
const KX = Number(root.dataset.kx);
const KY = Number(root.dataset.ky);
const MAX_SELECTED = Number(root.dataset.maxSelected);
const COLORS = { top_in: "#1f77b4", bot_in: "#ff7f0e", bot_out: "#2ca02c", top_out: "#d62728", x: "#7b3fb5", y: "#0f8a7e" };
const FALLBACK_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7b3fb5", "#8c564b", "#e377c2", "#7f7f7f"];
const WHEEL_SETTLE_MS = 150;
const LIVE_MIN_INTERVAL_MS = 1000;
const LIVE_MAX_INTERVAL_MS = 60000;
const MAX_POINTS_LIMIT = 5000;

const el = (id) => document.getElementById(id);
const statusLine = el("status");

let instruments = new Map(); // id → {id, name, kind, channels}
let view = null; // this tab's View, set by start() once the instruments are known
const panels = new Map(); // id → {element, meta, buttons: Plot, position: Plot|null}
let inFlight = null; // AbortController of the current view's requests
let fetchTimer = null;
let liveTimer = null;
let lastMaxPoints = 0; // the width the data on screen was fetched for

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

async function getJSON(url, signal) {
  const response = await fetch(url, { signal, credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401 || response.status === 403) throw new Error("not logged in any more: reload the page");
  if (!response.ok) {
    const body = await response.text();
    throw new Error(`HTTP ${response.status}: ${body.slice(0, 200)}`);
  }
  return response.json();
}

async function loadInstruments() {
  const found = await getJSON(`${API_ROOT}instruments/`); // a short catalogue, not paginated
  found.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  instruments = new Map(found.map((i) => [i.id, i]));
}

// --- controls ----------------------------------------------------------------------------

function renderInstrumentList() {
  const filter = el("instrument-filter").value.trim().toLowerCase();
  const list = el("instrument-list");
  const full = view.ids.length >= MAX_SELECTED;
  list.replaceChildren(
    ...[...instruments.values()]
      .filter((i) => !filter || i.name.toLowerCase().includes(filter) || view.ids.includes(i.id))
      .map((i) => {
        const item = document.createElement("li");
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = String(i.id);
        box.checked = view.ids.includes(i.id);
        box.disabled = full && !box.checked;
        const name = document.createElement("span");
        name.textContent = i.name;
        const kind = document.createElement("span");
        kind.className = "kind";
        kind.textContent = i.kind;
        label.append(box, name, kind);
        item.append(label);
        return item;
      }),
  );
}

// The custom range fields hold UTC as "YYYY-MM-DD HH:MM:SS": unambiguous in every locale.
function toInput(ms) {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

function fromInput(text) {
  return Date.parse(`${text.trim().replace(" ", "T")}Z`);
}

function syncControls() {
  const { start, end } = rangeOf(view);
  el("live").checked = view.live;
  el("range-start").value = toInput(start);
  el("range-end").value = toInput(end);
  for (const button of el("presets").querySelectorAll("button")) {
    button.classList.toggle("active", view.live && Number(button.dataset.seconds) * 1000 === view.span);
  }
  renderInstrumentList();
}

function bindControls() {
  el("instrument-filter").addEventListener("input", renderInstrumentList);
  el("instrument-list").addEventListener("change", (event) => {
    const id = Number(event.target.value);
    const ids = event.target.checked ? [...view.ids, id] : view.ids.filter((i) => i !== id);
    changeView({ ...view, ids: ids.slice(0, MAX_SELECTED) }, { push: true, delay: 0 });
  });
  el("presets").addEventListener("click", (event) => {
    const seconds = Number(event.target.dataset.seconds);
    if (!seconds) return;
    const span = seconds * 1000;
    const next = view.live ? { ...view, span } : fixedView(view, Date.now() - span, Date.now());
    changeView(next, { push: true, delay: 0 });
  });
  el("live").addEventListener("change", (event) => {
    const { start, end } = rangeOf(view);
    const next = event.target.checked ? { ...view, live: true, span: end - start } : fixedView(view, start, end);
    changeView(next, { push: true, delay: 0 });
  });
  el("custom-range").addEventListener("submit", (event) => {
    event.preventDefault();
    const start = fromInput(el("range-start").value);
    const end = fromInput(el("range-end").value);
    if (!(end > start)) {
      setStatus("custom range: 'To' must be after 'From'", true);
      return;
    }
    changeView(fixedView(view, start, end), { push: true, delay: 0 });
  });
  const shift = (fraction) => {
    const { start, end } = rangeOf(view);
    const delta = (end - start) * fraction;
    changeView(fixedView(view, start + delta, end + delta), { push: true, delay: 0 });
  };
  el("pan-left").addEventListener("click", () => shift(-0.5));
  el("pan-right").addEventListener("click", () => shift(0.5));
  el("zoom-out").addEventListener("click", () => {
    const { start, end } = rangeOf(view);
    zoomTo(start - (end - start) / 2, end + (end - start) / 2);
  });
  // A much wider or narrower window needs data at its new width.
  new ResizeObserver(() => {
    if (panels.size && Math.abs(maxPoints() - lastMaxPoints) > 0.2 * lastMaxPoints) scheduleFetch(300);
  }).observe(el("plots"));
  // Back/forward and edits of the hash.
  window.addEventListener("popstate", () => changeView(loadView(), { push: false, delay: 0 }));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && view.live) scheduleFetch(0);
  });
}

// --- panels ------------------------------------------------------------------------------

function zoomTo(start, end) {
  // Wheel and drag both land here; a burst of wheel steps settles into one request.
  changeView(fixedView(view, start, end), { push: true, delay: WHEEL_SETTLE_MS });
}

function createPanel(instrument) {
  const element = document.createElement("section");
  element.className = "panel";
  element.dataset.instrument = String(instrument.id);
  const header = document.createElement("header");
  const title = document.createElement("h3");
  title.textContent = instrument.name;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = instrument.kind;
  header.append(title, meta);
  const charts = document.createElement("div");
  charts.className = "charts";
  const buttonsBox = document.createElement("div");
  buttonsBox.className = "plot plot-channels";
  charts.append(buttonsBox);
  element.append(header, charts);
  el("plots").append(element);
  const options = { onZoom: zoomTo };
  const isBpm = hasButtons(instrument.channels);
  const buttons = new Plot(buttonsBox, { ...options, title: isBpm ? "Buttons" : "Channels", unit: "" });
  let position = null;
  if (isBpm) {
    const positionBox = document.createElement("div");
    positionBox.className = "plot plot-position";
    charts.append(positionBox);
    position = new Plot(positionBox, { ...options, title: "Position", unit: "mm" });
  } else {
    charts.classList.add("single");
  }
  return { element, meta, buttons, position };
}

function layoutPanels() {
  for (const [id, panel] of panels) {
    if (!view.ids.includes(id)) {
      panel.buttons.destroy();
      panel.position?.destroy();
      panel.element.remove();
      panels.delete(id);
    }
  }
  for (const id of view.ids) {
    const instrument = instruments.get(id);
    if (instrument && !panels.has(id)) panels.set(id, createPanel(instrument));
  }
  for (const id of view.ids) if (panels.has(id)) el("plots").append(panels.get(id).element); // keep view order
  el("empty").hidden = panels.size > 0;
}

function setPanelRanges() {
  const { start, end } = rangeOf(view);
  for (const panel of panels.values()) {
    panel.buttons.setRange(start, end);
    panel.position?.setRange(start, end);
  }
}

function showSeries(panel, instrument, body) {
  const channels = instrument.channels.filter((name) => body.series[name]);
  // The server keeps each channel's own min and max per bucket once a range holds more
  // than max_points samples: then the channels' timestamps differ, or one is full.
  const arrays = channels.map((name) => body.series[name]);
  const decimated = !sameTimes(arrays) || arrays.some((a) => a.length >= body.max_points);
  const level = body.resolution === "raw" ? "raw" : `${body.resolution} resolution`;
  const note = decimated ? `${level} · decimated` : level;
  panel.buttons.setData(
    channels.map((name, i) => ({
      name,
      color: COLORS[name] || FALLBACK_COLORS[i % FALLBACK_COLORS.length],
      points: body.series[name],
    })),
    note,
  );
  if (panel.position && BUTTONS.every((name) => body.series[name])) {
    // Per sample only where the four buttons were read together: raw, not decimated apart.
    const perSample = body.resolution === "raw" && sameTimes(BUTTONS.map((name) => body.series[name]));
    const grid = { start: Date.parse(body.start), end: Date.parse(body.end), buckets: Math.floor(body.max_points / 2) };
    const { x, y } = perSample ? positionPerSample(body.series, KX, KY) : positionPerBucket(body.series, KX, KY, grid);
    panel.position.setData(
      [
        { name: "x", color: COLORS.x, points: x },
        { name: "y", color: COLORS.y, points: y },
      ],
      perSample ? note : "bucket means",
    );
  }
  const points = channels.reduce((n, name) => n + body.series[name].length, 0);
  panel.element.dataset.resolution = body.resolution;
  panel.element.dataset.points = String(points);
  panel.element.dataset.state = "ready";
  panel.meta.textContent = `${instrument.kind} · ${note} · ${points.toLocaleString("en")} points`;
  return points;
}

// --- data --------------------------------------------------------------------------------

function maxPoints() {
  const first = panels.values().next().value;
  return Math.min(MAX_POINTS_LIMIT, Math.max(100, Math.round(first ? first.buttons.plotWidth : 1000)));
}

function seriesUrl(id, start, end, points) {
  const params = new URLSearchParams({
    start: new Date(start).toISOString(),
    end: new Date(end).toISOString(),
    max_points: String(points),
  });
  return `${API_ROOT}instruments/${id}/series?${params}`;
}

async function fetchView() {
  inFlight?.abort();
  const controller = new AbortController();
  inFlight = controller;
  const { start, end } = rangeOf(view);
  const width = maxPoints();
  lastMaxPoints = width;
  setPanelRanges();
  const began = performance.now();
  // Panels keep their state here: a view change marked them loading, a live refresh
  // swaps the data in place without flicker.
  const jobs = [...panels.entries()].map(async ([id, panel]) => {
    try {
      const body = await getJSON(seriesUrl(id, start, end, width), controller.signal);
      if (controller.signal.aborted) return { points: 0 };
      return { points: showSeries(panel, instruments.get(id), body) };
    } catch (error) {
      if (controller.signal.aborted) return { points: 0 };
      panel.element.dataset.state = "error";
      panel.meta.textContent = `error: ${error.message}`;
      throw error;
    }
  });
  const results = await Promise.allSettled(jobs);
  if (inFlight !== controller) return; // a newer view took over; its own status will follow
  inFlight = null;
  const failed = results.filter((r) => r.status === "rejected");
  const points = results.reduce((n, r) => n + (r.status === "fulfilled" ? r.value.points : 0), 0);
  const elapsed = Math.round(performance.now() - began);
  if (failed.length) setStatus(`${failed.length} request(s) failed: ${failed[0].reason.message}`, true);
  else if (panels.size) setStatus(`${panels.size} instrument(s) · ${points.toLocaleString("en")} points · ${elapsed} ms`);
  scheduleLive();
}

function scheduleFetch(delay) {
  clearTimeout(fetchTimer);
  fetchTimer = setTimeout(fetchView, delay);
}

function scheduleLive() {
  clearTimeout(liveTimer);
  if (!view.live || !panels.size) return;
  // One refresh per pixel of time is all a plot can show; bounded both ways.
  const perPixel = view.span / maxPoints();
  const interval = Math.min(LIVE_MAX_INTERVAL_MS, Math.max(LIVE_MIN_INTERVAL_MS, perPixel));
  liveTimer = setTimeout(() => {
    if (document.hidden || inFlight) scheduleLive(); // never pile up requests, idle when hidden
    else fetchView();
  }, interval);
}

function changeView(next, { push, delay }) {
  view = { ...next, ids: next.ids.filter((id) => instruments.has(id)) };
  inFlight?.abort(); // the previous view's answers are of no use any more
  inFlight = null;
  clearTimeout(liveTimer);
  saveView(view, { push });
  syncControls();
  layoutPanels();
  setPanelRanges();
  for (const panel of panels.values()) panel.element.dataset.state = "loading";
  scheduleFetch(delay);
}

async function start() {
  setStatus("loading instruments…");
  try {
    await loadInstruments();
  } catch (error) {
    setStatus(`cannot list instruments: ${error.message}`, true);
    return;
  }
  if (!instruments.size) {
    setStatus("no instruments registered yet");
    return;
  }
  view = loadView();
  if (!view.ids.length) view = { ...view, ids: [instruments.keys().next().value] };
  bindControls();
  changeView(view, { push: false, delay: 0 });
}

start();
