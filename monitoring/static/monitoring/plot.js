// A small time-series plot on a <canvas>: UTC time axis, auto-scaled y axis, one line per
// series, drag-to-zoom, wheel zoom and double-click zoom-out reported to the caller.
// The x range is always the caller's view range, never the data extent, so every panel
// of a tab lines up and a re-query only swaps the data.

const MARGIN = { left: 64, right: 12, top: 22, bottom: 30 };
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TIME_STEPS = [
  10, 20, 50, 100, 200, 500,
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY,
];
const MIN_TICK_SPACING_PX = 90;
const MIN_DRAG_PX = 5;

function niceStep(span, maxTicks) {
  const raw = span / Math.max(1, maxTicks);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 2.5, 5, 10]) {
    if (factor * magnitude >= raw) return factor * magnitude;
  }
  return 10 * magnitude;
}

function formatTime(ms, step) {
  const iso = new Date(ms).toISOString(); // 2026-11-22T10:11:12.345Z
  if (step >= DAY) return iso.slice(5, 10);
  if (step >= MINUTE) return iso.slice(11, 16);
  if (step >= SECOND) return iso.slice(11, 19);
  return iso.slice(11, 23);
}

function formatValue(value, step) {
  // As many decimals as the step needs: 0.25 → 2, 0.5 → 1, 20 → 0.
  let decimals = 0;
  while (decimals < 6 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6) {
    decimals += 1;
  }
  return value.toFixed(decimals);
}

export class Plot {
  /**
   * @param {HTMLElement} container an element with position: relative and a height
   * @param {{title: string, unit: string, onZoom: (start: number, end: number) => void}} options
   */
  constructor(container, options) {
    this.options = options;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "data";
    this.overlay = document.createElement("canvas");
    this.overlay.className = "overlay";
    container.append(this.canvas, this.overlay);
    this.container = container;
    this.series = [];
    this.range = { start: 0, end: 1 };
    this.note = "";
    this.drag = null;
    this.resizeObserver = new ResizeObserver(() => this.draw());
    this.resizeObserver.observe(container);
    this.bindPointer();
  }

  /** Width of the plotting area in CSS pixels: the caller's max_points. */
  get plotWidth() {
    return Math.max(1, this.container.clientWidth - MARGIN.left - MARGIN.right);
  }

  setRange(start, end) {
    this.range = { start, end };
    this.draw();
  }

  /** series: [{name, color, points: [[t_ms, value], ...]}] */
  setData(series, note = "") {
    this.series = series;
    this.note = note;
    this.container.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
    this.draw();
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.container.replaceChildren();
  }

  timeToX(t) {
    const { start, end } = this.range;
    return MARGIN.left + ((t - start) / (end - start)) * this.plotWidth;
  }

  xToTime(x) {
    const { start, end } = this.range;
    const fraction = (x - MARGIN.left) / this.plotWidth;
    return start + Math.min(1, Math.max(0, fraction)) * (end - start);
  }

  resizeCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = this.container.clientWidth;
    const height = this.container.clientHeight;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return { ctx, width, height };
  }

  visibleExtent() {
    const { start, end } = this.range;
    let low = Infinity;
    let high = -Infinity;
    for (const s of this.series) {
      for (const [t, v] of s.points) {
        if (t < start || t > end || !Number.isFinite(v)) continue;
        if (v < low) low = v;
        if (v > high) high = v;
      }
    }
    if (!Number.isFinite(low)) return null;
    if (low === high) return { low: low - 1, high: high + 1 };
    const pad = (high - low) * 0.05;
    return { low: low - pad, high: high + pad };
  }

  draw() {
    const { ctx, width, height } = this.resizeCanvas(this.canvas);
    const plotHeight = height - MARGIN.top - MARGIN.bottom;
    ctx.font = "11px system-ui, 'DejaVu Sans', sans-serif";
    ctx.strokeStyle = "#c5ccd6";
    ctx.strokeRect(MARGIN.left, MARGIN.top, this.plotWidth, plotHeight);
    this.drawTimeAxis(ctx, plotHeight);
    const extent = this.visibleExtent();
    if (extent) {
      const yOf = (v) => MARGIN.top + (1 - (v - extent.low) / (extent.high - extent.low)) * plotHeight;
      this.drawValueAxis(ctx, extent, yOf);
      ctx.save();
      ctx.beginPath();
      ctx.rect(MARGIN.left, MARGIN.top, this.plotWidth, plotHeight);
      ctx.clip();
      for (const s of this.series) this.drawLine(ctx, s, yOf);
      ctx.restore();
    } else {
      ctx.fillStyle = "#8a93a2";
      ctx.textAlign = "center";
      ctx.fillText("no data in this range", MARGIN.left + this.plotWidth / 2, MARGIN.top + plotHeight / 2);
    }
    this.drawLegend(ctx, width);
  }

  drawTimeAxis(ctx, plotHeight) {
    const { start, end } = this.range;
    const maxTicks = this.plotWidth / MIN_TICK_SPACING_PX;
    const step = TIME_STEPS.find((s) => (end - start) / s <= maxTicks) || TIME_STEPS.at(-1);
    const baseline = MARGIN.top + plotHeight;
    ctx.fillStyle = "#4a5567";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const right = this.container.clientWidth;
    for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
      const x = this.timeToX(t);
      ctx.strokeStyle = "#eceff3";
      ctx.beginPath();
      ctx.moveTo(x, MARGIN.top);
      ctx.lineTo(x, baseline);
      ctx.stroke();
      const label = formatTime(t, step);
      if (x + ctx.measureText(label).width / 2 <= right) ctx.fillText(label, x, baseline + 4);
    }
    ctx.textAlign = "left";
    ctx.fillStyle = "#8a93a2";
    ctx.fillText(`${new Date(start).toISOString().slice(0, 10)} UTC`, 4, baseline + 16);
  }

  drawValueAxis(ctx, extent, yOf) {
    const step = niceStep(extent.high - extent.low, 5);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = Math.ceil(extent.low / step) * step; v <= extent.high; v += step) {
      const y = yOf(v);
      ctx.strokeStyle = "#eceff3";
      ctx.beginPath();
      ctx.moveTo(MARGIN.left, y);
      ctx.lineTo(MARGIN.left + this.plotWidth, y);
      ctx.stroke();
      ctx.fillStyle = "#4a5567";
      ctx.fillText(formatValue(v, step), MARGIN.left - 4, y);
    }
  }

  drawLine(ctx, s, yOf) {
    // A gap much longer than the usual spacing is missing data: lift the pen there.
    const gapMs = 5 * medianSpacing(s.points);
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.2;
    ctx.beginPath();
    let previous = null;
    for (const [t, v] of s.points) {
      if (!Number.isFinite(v)) {
        previous = null;
        continue;
      }
      const x = this.timeToX(t);
      const y = yOf(v);
      if (previous === null || t - previous > gapMs) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
      previous = t;
    }
    ctx.stroke();
  }

  drawLegend(ctx, width) {
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    ctx.fillStyle = "#1d2430";
    ctx.font = "600 12px system-ui, 'DejaVu Sans', sans-serif";
    const title = this.options.unit ? `${this.options.title} [${this.options.unit}]` : this.options.title;
    ctx.fillText(title, MARGIN.left, 4);
    let x = MARGIN.left + ctx.measureText(title).width + 14;
    ctx.font = "11px system-ui, 'DejaVu Sans', sans-serif";
    for (const s of this.series) {
      ctx.fillStyle = s.color;
      ctx.fillRect(x, 8, 10, 3);
      ctx.fillStyle = "#4a5567";
      ctx.fillText(s.name, x + 13, 4);
      x += ctx.measureText(s.name).width + 26;
    }
    if (this.note && x + ctx.measureText(this.note).width <= width - MARGIN.right) {
      ctx.textAlign = "right";
      ctx.fillStyle = "#8a93a2";
      ctx.fillText(this.note, width - MARGIN.right, 4);
    }
  }

  drawSelection(x0, x1) {
    const { ctx, height } = this.resizeCanvas(this.overlay);
    if (x0 === null) return;
    const left = Math.max(MARGIN.left, Math.min(x0, x1));
    const right = Math.min(MARGIN.left + this.plotWidth, Math.max(x0, x1));
    ctx.fillStyle = "rgba(47, 111, 214, 0.15)";
    ctx.fillRect(left, MARGIN.top, right - left, height - MARGIN.top - MARGIN.bottom);
  }

  /** A vertical line under the pointer and each series' nearest value there. */
  drawCursor(x) {
    const { ctx, height } = this.resizeCanvas(this.overlay);
    if (x < MARGIN.left || x > MARGIN.left + this.plotWidth || !this.series.length) return;
    const t = this.xToTime(x);
    ctx.strokeStyle = "rgba(29, 36, 48, 0.35)";
    ctx.beginPath();
    ctx.moveTo(x, MARGIN.top);
    ctx.lineTo(x, height - MARGIN.bottom);
    ctx.stroke();
    const parts = [new Date(t).toISOString().slice(11, 23)];
    for (const s of this.series) {
      const point = nearest(s.points, t);
      if (point) parts.push(`${s.name} ${Number(point[1].toPrecision(6))}`);
    }
    ctx.font = "11px system-ui, 'DejaVu Sans', sans-serif";
    const text = parts.join("  ");
    const width = ctx.measureText(text).width + 8;
    const left = Math.min(Math.max(MARGIN.left, x + 6), MARGIN.left + this.plotWidth - width);
    ctx.fillStyle = "rgba(255, 255, 255, 0.9)";
    ctx.fillRect(left, MARGIN.top + 2, width, 16);
    ctx.fillStyle = "#1d2430";
    ctx.textBaseline = "top";
    ctx.fillText(text, left + 4, MARGIN.top + 4);
  }

  bindPointer() {
    const localX = (event) => event.clientX - this.overlay.getBoundingClientRect().left;
    this.overlay.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      this.overlay.setPointerCapture(event.pointerId);
      this.drag = { x0: localX(event), x1: localX(event) };
    });
    this.overlay.addEventListener("pointermove", (event) => {
      if (!this.drag) {
        this.drawCursor(localX(event));
        return;
      }
      this.drag.x1 = localX(event);
      this.drawSelection(this.drag.x0, this.drag.x1);
    });
    this.overlay.addEventListener("pointerleave", () => {
      if (!this.drag) this.drawSelection(null, null);
    });
    this.overlay.addEventListener("pointerup", () => {
      if (!this.drag) return;
      const { x0, x1 } = this.drag;
      this.drag = null;
      this.drawSelection(null, null);
      if (Math.abs(x1 - x0) >= MIN_DRAG_PX) {
        this.options.onZoom(this.xToTime(Math.min(x0, x1)), this.xToTime(Math.max(x0, x1)));
      }
    });
    this.overlay.addEventListener("wheel", (event) => {
      event.preventDefault();
      const factor = event.deltaY > 0 ? 1.25 : 0.8;
      const { start, end } = this.range;
      const center = this.xToTime(localX(event));
      this.options.onZoom(center - (center - start) * factor, center + (end - center) * factor);
    }, { passive: false });
    this.overlay.addEventListener("dblclick", () => {
      const { start, end } = this.range;
      const half = end - start;
      this.options.onZoom(start - half / 2, end + half / 2);
    });
  }
}

// The point of a time-sorted [[t, v], ...] closest to t, by bisection.
function nearest(points, t) {
  if (!points.length) return null;
  let low = 0;
  let high = points.length - 1;
  while (high - low > 1) {
    const middle = (low + high) >> 1;
    if (points[middle][0] < t) low = middle;
    else high = middle;
  }
  return Math.abs(points[low][0] - t) <= Math.abs(points[high][0] - t) ? points[low] : points[high];
}

function medianSpacing(points) {
  if (points.length < 3) return Infinity;
  const gaps = [];
  const stride = Math.max(1, Math.floor(points.length / 200));
  for (let i = stride; i < points.length; i += stride) gaps.push((points[i][0] - points[i - stride][0]) / stride);
  gaps.sort((a, b) => a - b);
  return Math.max(gaps[Math.floor(gaps.length / 2)], 1);
}
