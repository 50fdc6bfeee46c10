"""``pnm.judge_poll`` on values alone: the decision the poll tasks and the blocking wait share."""

from __future__ import annotations

import pytest

from devices.links import pnm
from devices.links.pnm import FALSE, TRUE, MeasStatus, PnmTest


def judge(status: int, enable: int = TRUE, seen_running: bool = False, elapsed_s: float = 0.5):
    return pnm.judge_poll(
        PnmTest.RXMER,
        3,
        status,
        enable,
        seen_running=seen_running,
        elapsed_s=elapsed_s,
        deadline_s=5,
        poll_s=1,
        stale_grace_s=2,
    )


def test_a_stale_sample_ready_right_after_the_trigger_is_not_accepted() -> None:
    verdict = judge(MeasStatus.SAMPLE_READY)
    assert not verdict.ready
    assert not verdict.seen_running


def test_sample_ready_counts_once_the_capture_was_seen_running() -> None:
    busy = judge(MeasStatus.BUSY)
    assert (busy.ready, busy.seen_running) == (False, True)
    assert judge(MeasStatus.SAMPLE_READY, seen_running=busy.seen_running).ready


def test_sample_ready_counts_when_file_enable_was_reset_or_after_the_grace() -> None:
    assert judge(MeasStatus.SAMPLE_READY, enable=FALSE).ready
    assert judge(MeasStatus.SAMPLE_READY, elapsed_s=2.0).ready


@pytest.mark.parametrize("status", sorted(pnm.TERMINAL_FAILURES))
def test_terminal_statuses_fail_the_capture(status: MeasStatus) -> None:
    with pytest.raises(pnm.CaptureFailed) as raised:
        judge(status, seen_running=True)
    assert raised.value.status is status


def test_the_deadline_ends_the_wait_before_a_poll_would_fall_after_it() -> None:
    assert not judge(MeasStatus.BUSY, elapsed_s=3.9).ready
    with pytest.raises(pnm.CaptureTimeout, match=r"RXMER on ifIndex 3: BUSY after 4\.1 s"):
        judge(MeasStatus.BUSY, elapsed_s=4.1)


def test_an_unknown_status_is_other_and_keeps_waiting() -> None:
    verdict = judge(99)
    assert (verdict.status, verdict.ready) == (MeasStatus.OTHER, False)
