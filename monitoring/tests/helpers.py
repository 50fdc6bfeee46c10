"""Generated sample data, a brute-force model of what retention must keep, a listener process."""

from __future__ import annotations

import ast
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pytest
from django.db import connection, transaction

from monitoring.models import MAX_CHANNELS
from monitoring.storage import SampleBatch, to_us, write_batch
from tests.helpers import ROOT, worker_environment

Row = tuple[int, int, tuple[float, ...]]  # (instrument id, µs since epoch, channel values)


def generated(instrument_ids: list[int], start: datetime, hours: float, step_s: float, seed=1):
    """Samples every ~``step_s`` (jittered, never colliding) per instrument, 4 channels."""
    rng = np.random.default_rng(seed)
    t0, n = to_us(start), int(hours * 3600 / step_s)
    parts = []
    for instrument in instrument_ids:
        offsets = np.cumsum(rng.integers(int(step_s * 5e5), int(step_s * 1.5e6), n))
        values = rng.normal(100.0, 10.0, (n, MAX_CHANNELS)).round(3)
        parts.append((np.full(n, instrument), t0 + offsets, values))
    return SampleBatch(
        np.concatenate([p[0] for p in parts]).astype(np.int64),
        np.concatenate([p[1] for p in parts]).astype(np.int64),
        np.concatenate([p[2] for p in parts]),
        np.full(n * len(instrument_ids), MAX_CHANNELS, dtype=np.int8),
    )


def store(batch: SampleBatch, interval_s: int = 60, chunks: int = 7) -> None:
    """Write in shuffled chunks, as out-of-order network batches would arrive."""
    order = np.random.default_rng(7).permutation(len(batch))
    for part in np.array_split(order, chunks):
        with transaction.atomic():
            write_batch(batch.take(np.sort(part)), interval_s)


def batch_of(rows: Sequence[Row]) -> SampleBatch:
    return SampleBatch(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, MAX_CHANNELS),
        np.full(len(rows), MAX_CHANNELS, dtype=np.int8),
    )


def rows_of(batch: SampleBatch) -> list[Row]:
    return [
        (int(i), int(t), tuple(float(x) for x in v))
        for i, t, v in zip(batch.instrument, batch.ts_us, batch.values, strict=True)
    ]


def expected_after_flush(rows: list[Row], cutoff_us: int, interval_s: int = 60) -> set[Row]:
    """Brute force: everything from the cutoff on; before it, the first row per interval."""
    kept: dict[tuple[int, int], Row] = {}
    recent = set()
    for row in rows:
        instrument, ts, _ = row
        if ts >= cutoff_us:
            recent.add(row)
            continue
        key = (instrument, ts // (interval_s * 1_000_000))
        if key not in kept or ts < kept[key][1]:
            kept[key] = row
    return recent | set(kept.values())


def stored_rows() -> set[Row]:
    """What the database holds: raw rows, plus snapshot rows from before the watermark."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT instrument_id, ts, c0, c1, c2, c3 FROM monitoring_sample")
        raw = cursor.fetchall()
        cursor.execute(
            "SELECT s.instrument_id, s.ts, s.c0, s.c1, s.c2, s.c3 FROM monitoring_snapshot s "
            "JOIN monitoring_retentionstate r ON r.id = 1 AND s.bucket < r.watermark"
        )
        thinned = cursor.fetchall()
    out = {(i, to_us(ts), tuple(v)) for i, ts, *v in raw}
    duplicated = out & {(i, to_us(ts), tuple(v)) for i, ts, *v in thinned}
    assert not duplicated, f"rows both raw and thinned: {sorted(duplicated)[:3]}"
    return out | {(i, to_us(ts), tuple(v)) for i, ts, *v in thinned}


class ListenerProcess:
    """``manage.py ingest_listener --port 0`` in a subprocess; its bound port from stdout.

    ``env`` adds settings variables; ``max_files`` lowers its open-file limit (set right
    after the start, before it listens). ``stop`` returns the snapshot it prints at exit.
    """

    def __init__(self, env: dict[str, str] | None = None, max_files: int | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "ingest_listener", "--port=0", "--batch-seconds=0.2"],
            cwd=ROOT,
            env=worker_environment(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if max_files is not None:
            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (max_files, max_files))
        self.output: list[str] = []
        self.port: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        for text in self.proc.stdout:
            self.output.append(text)
            found = re.search(r"listening on [\d.]+:(\d+)", text)
            if found:
                self.port = int(found.group(1))

    def text(self) -> str:
        return "".join(self.output)

    def stop(self) -> dict:
        """Stop it (SIGTERM, then SIGKILL); the snapshot it printed on the way out (the test
        fails when there is none: a listener that stops must say what it counted)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._reader.join(5)
        for text in self.output:
            if text.startswith("listener stopped: "):
                return ast.literal_eval(text.removeprefix("listener stopped: "))
        pytest.fail("the listener printed no snapshot when it stopped:\n" + self.text()[-2000:])
