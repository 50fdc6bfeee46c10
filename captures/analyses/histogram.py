"""Downstream histogram (PNN5): hits per ADC bin and the dwell counts.

Bins are reported by index (0..n-1) with the file's symmetry flag; the mean bin is the
hit-weighted mean index, the peak bin the index with the most hits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from captures.analyses.base import device_title, new_figure, number, to_png
from captures.pnm import Histogram


@dataclass(eq=False)
class HistogramResult:
    kind = "histogram"
    parsed: Histogram

    def summary(self) -> dict[str, object]:
        hits = self.parsed.hit_counts.astype(np.float64)
        total = int(self.parsed.hit_counts.sum(dtype=np.uint64))
        mean = float((np.arange(hits.size) * hits).sum() / total) if total else None
        return {
            "bins": int(hits.size),
            "total_hits": total,
            "mean_bin": number(mean),
            "peak_bin": int(np.argmax(hits)) if hits.size else None,
            "peak_hits": int(hits.max()) if hits.size else None,
            "dwell_counts": self.parsed.dwell_counts.tolist(),
            "total_dwell_count": int(self.parsed.dwell_counts.sum(dtype=np.uint64)),
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "analysis": self.kind,
            "mac_address": self.parsed.mac_address,
            "capture_time": self.parsed.header.capture_time,
            "symmetry": self.parsed.symmetry,
            "summary": self.summary(),
            "hit_counts": self.parsed.hit_counts.tolist(),
        }

    def csv_rows(self) -> Iterator[list[object]]:
        yield ["bin", "hits"]
        for n, hits in enumerate(self.parsed.hit_counts.tolist()):
            yield [n, hits]

    def png(self) -> bytes:
        figure, (ax,) = new_figure(1)
        hits = self.parsed.hit_counts
        ax.bar(np.arange(hits.size), hits, width=1.0, color="tab:blue")
        summary = self.summary()
        title = device_title(
            "histogram", None, self.parsed.mac_address, self.parsed.header.capture_time
        )
        ax.set_title(
            f"{title}\n{summary['total_hits']} hits, peak bin {summary['peak_bin']}, "
            f"mean bin {summary['mean_bin']}, dwell {summary['dwell_counts']}, "
            f"symmetry {self.parsed.symmetry}"
        )
        ax.set_xlabel("bin (ADC sample value index)")
        ax.set_ylabel("hits")
        return to_png(figure, [ax])


def analyse_histogram(parsed: Histogram) -> HistogramResult:
    return HistogramResult(parsed)
