// Beam position from the four button channels (difference over sum).
//   Σ = top_in + bot_in + bot_out + top_out
//   x = kx · ((top_out + bot_out) − (top_in + bot_in)) / Σ     (+x towards the outer buttons)
//   y = ky · ((top_in + top_out) − (bot_in + bot_out)) / Σ     (+y towards the top buttons)

export const BUTTONS = ["top_in", "bot_in", "bot_out", "top_out"];

/** True when the instrument has the four BPM buttons. */
export function hasButtons(channels) {
  return BUTTONS.every((name) => channels.includes(name));
}

/** True when every channel has the same timestamps (nothing was decimated apart). */
export function sameTimes(arrays) {
  const [first, ...rest] = arrays;
  return rest.every((a) => a.length === first.length && a.every((p, i) => p[0] === first[i][0]));
}

// Mean of each channel's points per time bucket: decimated channels keep different
// samples (each its own min and max), so x and y can only be formed bucket by bucket.
function bucketMeans(arrays, start, end, buckets) {
  const width = (end - start) / buckets;
  const sums = arrays.map(() => new Float64Array(buckets));
  const counts = arrays.map(() => new Uint32Array(buckets));
  arrays.forEach((points, c) => {
    for (const [t, v] of points) {
      const b = Math.floor((t - start) / width);
      if (b < 0 || b >= buckets || !Number.isFinite(v)) continue;
      sums[c][b] += v;
      counts[c][b] += 1;
    }
  });
  const times = Float64Array.from({ length: buckets }, (_, b) => start + (b + 0.5) * width);
  const means = sums.map((sum, c) => sum.map((total, b) => (counts[c][b] ? total / counts[c][b] : NaN)));
  return { times, means };
}

function differenceOverSum(times, [topIn, botIn, botOut, topOut], kx, ky) {
  const x = [];
  const y = [];
  for (let i = 0; i < times.length; i += 1) {
    const sum = topIn[i] + botIn[i] + botOut[i] + topOut[i];
    if (!(Math.abs(sum) > 1e-12)) continue; // also skips NaN from empty buckets
    x.push([times[i], (kx * (topOut[i] + botOut[i] - topIn[i] - botIn[i])) / sum]);
    y.push([times[i], (ky * (topIn[i] + topOut[i] - botIn[i] - botOut[i])) / sum]);
  }
  return { x, y };
}

/** x and y of every sample; the four channels must share their timestamps (raw data). */
export function positionPerSample(series, kx, ky) {
  const arrays = BUTTONS.map((name) => series[name] || []);
  const times = Float64Array.from(arrays[0], (p) => p[0]);
  return differenceOverSum(times, arrays.map((a) => Float64Array.from(a, (p) => p[1])), kx, ky);
}

/**
 * x and y per time bucket of grid {start, end, buckets}, from each button's mean there:
 * for decimated or per-minute data, whose points are each channel's own min and max.
 */
export function positionPerBucket(series, kx, ky, grid) {
  const arrays = BUTTONS.map((name) => series[name] || []);
  const { times, means } = bucketMeans(arrays, grid.start, grid.end, Math.max(1, grid.buckets));
  return differenceOverSum(times, means, kx, ky);
}
