"""Time to analyse a 300-capture RxMER operation, and process RSS across 100 analyses.

Creates its own throw-away database (``bench_pnm_analysis_<pid>`` next to DATABASE_URL's)
and storage folder, imports a PyPNM data dir of 300 RxMER files (7600 subcarriers, as the
real demo captures) made by the modem simulator's writer, then times ``analyse`` plus full
output (JSON/CSV streamed to nowhere, PNG) for each analysis type.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

CAPTURES = 300
SUBCARRIERS = 7600
ROUNDS = 3
RSS_ANALYSES = 100


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build_operation(workdir: Path):
    """300 simulator RxMER files in a PyPNM data dir, loaded with ``import_pypnm``."""
    from captures.models import Operation
    from captures.pypnm_import import import_data_dir
    from simulators.pnm_files import rxmer_file

    mac, start, group = "aa:bb:cc:00:00:01", 1767225600, "00000000000000b1"
    (workdir / "pnm").mkdir(parents=True)
    transactions = {}
    for tick in range(CAPTURES):
        name = f"ds_ofdm_rxmer_per_subcar_aabbcc000001_193_{start + tick}.bin"
        data = rxmer_file(
            channel_id=193,
            mac=mac,
            capture_time=start + tick,
            seed=tick,
            subcarriers=SUBCARRIERS,
            spacing_khz=25,
        )
        (workdir / "pnm" / name).write_bytes(data)
        transactions[f"{tick + 1:016x}"] = {
            "timestamp": start + tick,
            "mac_address": mac,
            "pnm_test_type": "DS_OFDM_RXMER_PER_SUBCAR",
            "filename": name,
        }
    manifests = {
        "operation_capture.json": {
            "00000000000000a1": {"capture_group_id": group, "created": start}
        },
        "capture_group.json": {group: {"created": start, "transactions": list(transactions)}},
        "transactions.json": transactions,
    }
    for name, content in manifests.items():
        (workdir / name).write_text(json.dumps(content))
    import_data_dir(workdir)
    return Operation.objects.get(operation_id="00000000000000a1")


def run_analysis(operation, analysis, output: str) -> int:
    from captures.analysis import analyse, iter_csv, iter_json
    from captures.analysis_plots import analysis_png

    result = analyse(operation, analysis)
    if output == "png":
        size = len(analysis_png(result))
    else:
        chunks = iter_json(result) if output == "json" else iter_csv(result)
        size = sum(len(chunk) for chunk in chunks)
    del result
    gc.collect()
    return size


def main() -> None:
    from captures.analysis import AnalysisType

    settings.FIELDRELAY_STORAGE_ROOT = Path(tempfile.mkdtemp(prefix="bench-pnm-storage-"))
    connection.settings_dict["TEST"]["NAME"] = f"bench_pnm_analysis_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        operation = build_operation(settings.FIELDRELAY_STORAGE_ROOT / "pypnm-data")
        print(
            f"imported {CAPTURES} RxMER captures ({SUBCARRIERS} subcarriers) with import_pypnm "
            f"in {time.perf_counter() - started:.1f} s"
        )
        print(f"{'analysis':12} {'format':6} {'median s':>9} {'output bytes':>13}")
        for analysis in (AnalysisType.MIN_AVG_MAX, AnalysisType.HEATMAP):
            for output in ("json", "csv", "png"):
                times, size = [], 0
                for _ in range(ROUNDS):
                    t0 = time.perf_counter()
                    size = run_analysis(operation, analysis, output)
                    times.append(time.perf_counter() - t0)
                print(f"{analysis:12} {output:6} {statistics.median(times):9.3f} {size:13d}")
        before = rss_mb()
        for i in range(RSS_ANALYSES):  # mostly min-avg-max; every 10th a heat map, a PNG
            kind = AnalysisType.HEATMAP if i % 10 == 4 else AnalysisType.MIN_AVG_MAX
            output = "png" if i % 10 == 9 else ("json", "csv")[i % 2]
            run_analysis(operation, kind, output)
            if i == 9:
                warm = rss_mb()
        after = rss_mb()
        print(
            f"RSS across {RSS_ANALYSES} analyses (300 captures each): before {before:.1f} MB, "
            f"after 10 {warm:.1f} MB, after {RSS_ANALYSES} {after:.1f} MB "
            f"(growth after warm-up {after - warm:+.1f} MB)"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        shutil.rmtree(settings.FIELDRELAY_STORAGE_ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
