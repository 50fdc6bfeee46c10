"""Parse time per PNM file type, on the real sample files (no Django, no services).

Prints the median of several timed rounds per file, in microseconds. Goal: an RxMER file
in <= 0.5 ms, i.e. >= 80x faster than PyPNM's ~42 ms (PyPNM's figure from
shared/reference/docsis-pnm.md §7, measured there on a 2-core VM; PyPNM is not installed here).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from captures.pnm import parse  # noqa: E402

SAMPLES = ROOT / "captures" / "tests" / "data" / "pnm"
PYPNM_RXMER_MS = 42.0
ROUNDS = 7
ROUND_S = 0.05


def per_call_us(func, data: bytes) -> float:
    """Median over rounds of the mean time per call, each round ~ROUND_S long."""
    func(data)
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            func(data)
        if time.perf_counter() - start >= ROUND_S / 5 or calls >= 1 << 20:
            break
        calls *= 2
    results = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            func(data)
        results.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(results)


def legacy(data: bytes) -> bytes:
    return b"PNM" + data[3:4] + data[6:]


def main() -> None:
    print(f"{'file':58} {'type':26} {'bytes':>7} {'parse µs':>9} {'+derived µs':>11}")
    rxmer_us = None
    for path in sorted(SAMPLES.glob("*.bin")):
        data = path.read_bytes()
        if data[:3] != b"PNN":
            continue
        result = parse(data)
        parse_us = per_call_us(parse, data)
        derived_us = per_call_us(lambda d: parse(d).as_dict(data=False), data)
        name = result.header.file_type.name
        print(f"{path.name:58} {name:26} {len(data):7d} {parse_us:9.1f} {derived_us:11.1f}")
        if path.name == "rxmer.bin":
            rxmer_us = parse_us
    legacy_us = per_call_us(parse, legacy((SAMPLES / "rxmer.bin").read_bytes()))
    print(f"{'rxmer.bin with the legacy PNM header':58} {'RXMER':26} {'':7} {legacy_us:9.1f}")
    assert rxmer_us is not None, "rxmer.bin is missing from the samples"
    speedup = PYPNM_RXMER_MS * 1000 / rxmer_us
    verdict = "meets" if rxmer_us <= 500 and speedup >= 80 else "MISSES"
    print(
        f"RxMER parse {rxmer_us:.1f} µs (goal <= 500 µs); {speedup:.0f}x PyPNM's "
        f"{PYPNM_RXMER_MS:.0f} ms (goal >= 80x): {verdict} the goal"
    )


if __name__ == "__main__":
    main()
