"""CPU and thread switches of an ingester whose source emits items at a steady rate, each
after a little work of its own, forwarded together after a linger (the TFTP receiver's
shape: uploads completing one after another, handed on in batches).

    python bench/bench_ingester_linger.py [--items 2000] [--rate 400] [--work 300]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.ingester import Ingester, Item


class SteadySource(Ingester):
    def __init__(self, items: int, rate: float, work: int, **kwargs) -> None:
        super().__init__("bench", **kwargs)
        self.items, self.rate, self.work = items, rate, work

    def serve(self) -> None:
        start = time.monotonic()
        for number in range(self.items):
            total = 0
            for step in range(self.work):  # the protocol work of one item
                total += step
            self.emit(Item(source="bench", key=f"k{number}", payload=b"x"))
            delay = start + (number + 1) / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=400.0, help="items per second")
    parser.add_argument("--work", type=int, default=300, help="loop steps per item")
    parser.add_argument("--linger", type=float, default=0.02, help="seconds")
    args = parser.parse_args()
    calls: list[int] = []
    source = SteadySource(
        args.items,
        args.rate,
        args.work,
        forward=lambda item: calls.append(1),
        forward_together=lambda items: calls.append(len(items)),
        linger_s=args.linger,
    )
    before = resource.getrusage(resource.RUSAGE_SELF)
    source.run()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"{args.items} items at {args.rate:g}/s, linger {args.linger:g} s: "
        f"CPU {cpu_s * 1e6 / args.items:.0f} us per item, {len(calls)} calls for "
        f"{sum(calls)} items, thread switches {after.ru_nvcsw - before.ru_nvcsw} voluntary, "
        f"{after.ru_nivcsw - before.ru_nivcsw} involuntary"
    )


if __name__ == "__main__":
    main()
