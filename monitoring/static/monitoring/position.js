// Beam position from the four button channels (difference over sum).
//   Σ = top_in + bot_in + bot_out + top_out
//   x = kx · ((top_out + bot_out) − (top_in + bot_in)) / Σ     (+x towards the outer buttons)
//   y = ky · ((top_in + top_out) − (bot_in + bot_out)) / Σ     (+y towards the top buttons)

export const BUTTONS = ["top_in", "bot_in", "bot_out", "top_out"];

/** True when the instrument has the four BPM buttons. */
export function hasButtons(channels) {
  return BUTTONS.every((name) => channels.includes(name));
}

function sameTimes(arrays) {
  const [first, ...rest] = arrays;
  return rest.every((a) => a.length === first.length && a.every((p, i) => p[0] === first[i][0]));
}

function unionTimes(arrays) {
  const times = new Set();
  for (const a of arrays) for (const [t] of a) times.add(t);
  return Float64Array.from(times).sort();
}

// Linear interpolation of a sorted [[t, v], ...] array at sorted times, no extrapolation.
function interpolate(points, times) {
  const values = new Float64Array(times.length).fill(NaN);
  let j = 0;
  for (let i = 0; i < times.length; i += 1) {
    const t = times[i];
    while (j + 1 < points.length && points[j + 1][0] < t) j += 1;
    if (j + 1 >= points.length) {
      if (points.length && points[points.length - 1][0] === t) values[i] = points[points.length - 1][1];
      continue;
    }
    const [t0, v0] = points[j];
    const [t1, v1] = points[j + 1];
    if (t < t0) continue;
    values[i] = t1 === t0 ? v0 : v0 + ((v1 - v0) * (t - t0)) / (t1 - t0);
  }
  return values;
}

/**
 * @param {Object<string, Array<[number, number]>>} series channel → points
 * @returns {{x: Array, y: Array, exact: boolean}} exact is false when the channels had to be
 *   interpolated onto a common grid (decimated data picks different times per channel).
 */
export function beamPosition(series, kx, ky) {
  const arrays = BUTTONS.map((name) => series[name] || []);
  const exact = sameTimes(arrays);
  const times = exact ? Float64Array.from(arrays[0], (p) => p[0]) : unionTimes(arrays);
  const [topIn, botIn, botOut, topOut] = exact
    ? arrays.map((a) => Float64Array.from(a, (p) => p[1]))
    : arrays.map((a) => interpolate(a, times));
  const x = [];
  const y = [];
  for (let i = 0; i < times.length; i += 1) {
    const sum = topIn[i] + botIn[i] + botOut[i] + topOut[i];
    if (!(Math.abs(sum) > 1e-12)) continue; // also skips NaN from missing channels
    x.push([times[i], (kx * (topOut[i] + botOut[i] - topIn[i] - botIn[i])) / sum]);
    y.push([times[i], (ky * (topIn[i] + topOut[i] - botIn[i] - botOut[i])) / sum]);
  }
  return { x, y, exact };
}
