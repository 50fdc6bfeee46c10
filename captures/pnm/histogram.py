"""Downstream histogram (PNN5): ADC sample hit counts per bin and dwell counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captures.pnm.common import mac_text
from captures.pnm.cursor import Cursor
from captures.pnm.header import PnmHeader


@dataclass(eq=False)
class Histogram:
    header: PnmHeader
    mac_address: str
    symmetry: int
    dwell_counts: np.ndarray  # uint32
    hit_counts: np.ndarray  # uint32 per bin

    def as_dict(self, data: bool = True) -> dict[str, object]:
        hits = self.hit_counts.astype(np.uint64)
        result = {
            "header": self.header.as_dict(),
            "mac_address": self.mac_address,
            "symmetry": self.symmetry,
            "stats": {
                "bins": int(hits.size),
                "total_hits": int(hits.sum()),
                "dwell_counts": self.dwell_counts.tolist(),
            },
        }
        if data:
            result["hit_counts"] = self.hit_counts.tolist()
        return result


def _counts(cursor: Cursor, field: str) -> np.ndarray:
    length_offset = cursor.pos
    length = cursor.fields([(f"{field}_length", "I")])[f"{field}_length"]
    count = cursor.sized_block(length, 4, f"{field}_length", length_offset)
    return cursor.array(">u4", count, field)


def parse_histogram(header: PnmHeader, cursor: Cursor) -> Histogram:
    head = cursor.fields([("mac_address", "6s"), ("symmetry", "B")])
    dwell = _counts(cursor, "dwell_counts")
    hits = _counts(cursor, "hit_counts")
    return Histogram(header, mac_text(head["mac_address"]), head["symmetry"], dwell, hits)
