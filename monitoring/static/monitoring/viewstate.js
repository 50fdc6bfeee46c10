// The view of one browser tab: which instruments, which time range, live or not.
// It lives in the URL hash (shareable, back/forward undoes a zoom) and in sessionStorage
// (per tab: a reload without a hash restores this tab's view, never another tab's).
// Nothing about it is kept on the server.

const STORAGE_KEY = "fieldrelay.monitoring.view";
export const MIN_SPAN_MS = 1000;
export const MAX_SPAN_MS = 400 * 24 * 3600 * 1000;
export const DEFAULT_SPAN_MS = 10 * 60 * 1000;

/**
 * @typedef {{ids: number[], live: boolean, span: number, start: number, end: number}} View
 * In live mode only span counts (the range ends now); otherwise start and end do.
 */

function parseTime(text) {
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

function clampSpan(span) {
  return Math.min(MAX_SPAN_MS, Math.max(MIN_SPAN_MS, span));
}

/** A View from "ids=1,2&live=600" or "ids=1&start=<iso>&end=<iso>", or null. */
export function parseView(text) {
  const params = new URLSearchParams(text.replace(/^[#?]/, ""));
  if (!params.has("ids")) return null;
  const ids = params.get("ids").split(",").map(Number).filter((n) => Number.isInteger(n) && n > 0);
  if (params.has("live")) {
    const seconds = Number(params.get("live"));
    if (!(seconds > 0)) return null;
    return { ids, live: true, span: clampSpan(seconds * 1000), start: 0, end: 0 };
  }
  const start = parseTime(params.get("start") || "");
  const end = parseTime(params.get("end") || "");
  if (start === null || end === null || end <= start) return null;
  return { ids, live: false, span: end - start, start, end };
}

export function formatView(view) {
  const parts = [`ids=${view.ids.join(",")}`];
  if (view.live) parts.push(`live=${Math.round(view.span / 1000)}`);
  else parts.push(`start=${new Date(view.start).toISOString()}`, `end=${new Date(view.end).toISOString()}`);
  return parts.join("&");
}

/** The [start, end] this view shows at time now. */
export function rangeOf(view, now = Date.now()) {
  return view.live ? { start: now - view.span, end: now } : { start: view.start, end: view.end };
}

/** A fixed view over [start, end] (zooming leaves live mode), span kept within bounds. */
export function fixedView(view, start, end) {
  const span = clampSpan(end - start);
  const center = (start + end) / 2;
  return { ids: view.ids, live: false, span, start: center - span / 2, end: center + span / 2 };
}

/** The tab's view: URL hash first, then this tab's sessionStorage, then the default. */
export function loadView() {
  return (
    parseView(window.location.hash) ||
    parseView(window.sessionStorage.getItem(STORAGE_KEY) || "") || {
      ids: [],
      live: true,
      span: DEFAULT_SPAN_MS,
      start: 0,
      end: 0,
    }
  );
}

/** Store the view in this tab; push a history entry for user changes so back undoes them. */
export function saveView(view, { push }) {
  const text = formatView(view);
  window.sessionStorage.setItem(STORAGE_KEY, text);
  if (window.location.hash.slice(1) === text) return;
  const url = `${window.location.pathname}${window.location.search}#${text}`;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}
