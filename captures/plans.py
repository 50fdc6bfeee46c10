"""Which tests each tick of an operation triggers, and so how many captures it plans.

Most operations trigger their one test on every tick. PyPNM's OFDM performance-1 mixes
tests in one capture group: RxMER on every tick, one modulation profile around the middle
of the run, and a FEC summary at each 600 s mark and at the end (a 10-minute summary then
covers the run without gaps). Pure functions of the operation's fixed fields, so the plan
computed at the start, at a tick and at the end is the same.
"""

from __future__ import annotations

from collections import Counter

from captures.models import MeasureMode, Operation
from devices.links.pnm import PnmTest

FEC_SUMMARY_PERIOD_S = 600  # a 10-minute summary holds 600 one-second sets


def tick_tests(operation: Operation, tick: int) -> list[PnmTest]:
    """The tests tick ``tick`` (1-based; the last is ``total_ticks``) triggers, in order."""
    if operation.measure_mode != MeasureMode.OFDM_PERFORMANCE_1:
        return [operation.pnm_test]
    total = operation.total_ticks
    tests = [PnmTest.RXMER]
    if tick == (total + 1) // 2:
        tests.append(PnmTest.MODULATION_PROFILE)
    if tick == total or _crosses_fec_mark(operation.sample_interval_s, tick):
        tests.append(PnmTest.FEC_SUMMARY)
    return tests


def _crosses_fec_mark(interval_s: int, tick: int) -> bool:
    """Whether a 600 s mark falls in (time of tick - 1, time of tick]."""
    if tick < 2:
        return False
    now, before = (tick - 1) * interval_s, (tick - 2) * interval_s
    return now // FEC_SUMMARY_PERIOD_S > before // FEC_SUMMARY_PERIOD_S


def operation_tests(operation: Operation) -> list[PnmTest]:
    """Every test the operation triggers at some tick (their scopes are discovered at the
    first tick, so the whole plan is fixed then)."""
    if operation.measure_mode != MeasureMode.OFDM_PERFORMANCE_1:
        return [operation.pnm_test]
    return [PnmTest.RXMER, PnmTest.MODULATION_PROFILE, PnmTest.FEC_SUMMARY]


def test_counts(operation: Operation, ticks: range) -> Counter[PnmTest]:
    """How many of ``ticks`` trigger each test."""
    if operation.measure_mode != MeasureMode.OFDM_PERFORMANCE_1:
        return Counter({operation.pnm_test: len(ticks)})
    counts: Counter[PnmTest] = Counter()
    for tick in ticks:
        counts.update(tick_tests(operation, tick))
    return counts
