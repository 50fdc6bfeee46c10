"""Operation bookkeeping without a worker: ticks, duplicates, storage errors, the sweeper."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from captures import services, staging, storage, triggering
from captures.models import CaptureState, Operation, OperationState, Transaction
from captures.tests.helpers import assert_accounted
from core import locks
from devices.links.pnm import PnmTest
from simulators.pnm_files import pnm_file
from tests.factories import (
    make_modem,
    make_operation,
    rxmer_capture,
    stored_transaction,
    uploaded_capture,
)

RXMER = PnmTest.RXMER
MER = RXMER.value

pytestmark = pytest.mark.django_db


def claim(operation: Operation, seconds: float, *, after_end: bool = False) -> services.Tick:
    """Claim the tick due ``seconds`` after the operation's start (or end); it must exist."""
    origin = operation.ends_at if after_end else operation.started_at
    assert origin is not None
    tick = services.claim_tick(operation.pk, origin + timedelta(seconds=seconds))
    assert tick is not None
    return tick


def test_a_tick_delivered_twice_is_claimed_once():
    operation = make_operation(duration_s=30, sample_interval_s=10)
    now = timezone.now()

    first = services.claim_tick(operation.pk, now + timedelta(seconds=1))
    duplicate = services.claim_tick(operation.pk, now + timedelta(seconds=2))
    following = services.claim_tick(operation.pk, now + timedelta(seconds=11))

    assert first is not None
    assert (first.number, first.final) == (1, False)
    assert duplicate is None
    assert following is not None
    assert following.number == 2


def test_the_tick_after_the_duration_is_the_final_one_and_drops_the_schedule():
    operation = make_operation(duration_s=30, sample_interval_s=10)
    assert operation.ends_at is not None
    final = services.claim_tick(operation.pk, operation.ends_at + timedelta(seconds=1))

    assert final is not None
    assert final.final
    assert final.number == operation.total_ticks == 4
    assert Operation.objects.get(pk=operation.pk).next_tick_at is None
    assert services.claim_tick(operation.pk, operation.ends_at + timedelta(seconds=20)) is None
    # Ticks 1-3 were never dispatched: missed when the final one jumped over them.
    assert Operation.objects.get(pk=operation.pk).missed == 3
    assert not services.final_tick_settled(operation.pk)  # the final tick has no outcome yet
    services.tick_skipped(operation, final.number)
    assert services.final_tick_settled(operation.pk)

    done = Operation.objects.get(pk=operation.pk)
    assert done.state == OperationState.COMPLETED_PARTIAL  # not one capture arrived
    assert (done.planned_ticks, done.expected, done.missed, done.skipped) == (4, 4, 3, 1)
    assert done.shortfall == 4
    assert reasons(done) == {
        ("missed", services.NOT_DISPATCHED): 3,
        ("skipped", services.MODEM_BUSY): 1,
    }


def reasons(operation: Operation) -> dict[tuple[str, str], int]:
    return {(row.outcome, row.reason): row.count for row in operation.reasons.all()}


def test_the_plan_per_channel_is_fixed_when_the_channels_are_first_known():
    operation = make_operation(duration_s=30, sample_interval_s=10)  # 4 ticks
    first = claim(operation, 1)
    # The first tick fails before the modem's channels are known: one unit, no channel.
    services.tick_failed(operation.pk, "modem did not answer", "SnmpTimeout", tick=first.number)

    assert services.plan_slots(operation, {RXMER: [193, 194]}) == [(MER, 193), (MER, 194)]
    fixed = services.plan_slots(operation, {RXMER: [193, 194, 195]})
    assert fixed == [(MER, 193), (MER, 194)]

    after = Operation.objects.get(pk=operation.pk)
    assert after.planned_ticks == 4
    assert after.expected == 1 + 2 * 3  # the failed tick, then 3 ticks x 2 channels
    second = claim(operation, 11)
    services.tick_skipped(operation, second.number)
    assert Operation.objects.get(pk=operation.pk).skipped == 2  # both channels

    assert services.stop_operation(after)

    stopped = Operation.objects.get(pk=operation.pk)
    assert (stopped.failed, stopped.skipped, stopped.cancelled) == (1, 2, 4)
    assert reasons(stopped)[("failed", "SnmpTimeout")] == 1
    assert reasons(stopped)[("cancelled", "operation stopped")] == 4
    assert_accounted(stopped)


def test_what_the_first_tick_reads_of_the_modem_is_recorded_with_the_plan_in_one_go(
    django_capture_on_commit_callbacks,
):
    operation = make_operation(duration_s=30, sample_interval_s=10)  # 4 ticks
    description = {"VENDOR": "Acme", "MODEL": "CM-9", "HW_REV": "2", "SW_REV": "1.0"}
    walked = {"ds_ofdm": [[3, 193], [4, 194]]}

    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        slots = services.plan_slots(
            operation, {RXMER: [193, 194]}, description=description, walked=walked
        )

    assert slots == [(MER, 193), (MER, 194)]
    after = Operation.objects.select_related("modem").get(pk=operation.pk)
    assert after.metadata["system_description"] == description
    assert after.metadata["channels"] == walked
    assert after.expected == 4 * 2
    assert (after.modem.vendor, after.modem.model, after.modem.sw_rev) == ("Acme", "CM-9", "1.0")
    assert operation.metadata == after.metadata  # the caller's copy too
    # One transaction (a savepoint here, inside the test's): the operation read and
    # locked, the modem, the plan read and insert, the operation's UPDATE. No sysDescr
    # backfill: nothing was collected, so no transaction can lack it.
    kinds = [query["sql"].split()[0] for query in queries]
    assert kinds[0] == "SAVEPOINT"
    assert kinds[-1] == "RELEASE"
    assert len(kinds) == 7, kinds

    # Later ticks know it all: nothing is read or written.
    with CaptureQueriesContext(connection) as queries:
        assert services.plan_slots(after, {RXMER: [193, 194]}) == slots
    assert not queries


def test_files_stored_before_the_sysdescr_was_read_get_it_when_it_is():
    operation = make_operation()
    services.plan_slots(operation, {RXMER: [193]})
    capture, _ = uploaded_capture(operation, tick=1, channel_id=193)
    (record,) = staging.stage_captures([capture.pk])
    assert record.device_details == {}
    description = {"VENDOR": "Acme", "MODEL": "CM-9", "HW_REV": "2", "SW_REV": "1.0"}

    services.plan_slots(operation, {RXMER: [193]}, description=description)

    record.refresh_from_db()
    assert record.device_details == {"system_description": description}


def at_final_tick() -> tuple[Operation, services.Tick]:
    """Two ticks on channel 193: the first one's file stored, the final one claimed."""
    operation = make_operation(duration_s=10, sample_interval_s=10)
    services.plan_slots(operation, {RXMER: [193]})
    first = claim(operation, 5)
    capture, _ = uploaded_capture(operation, tick=first.number, channel_id=193)
    staging.stage_captures([capture.pk])
    final = claim(operation, 6, after_end=True)
    assert final.final
    return operation, final


def test_a_tick_lost_with_its_worker_is_missed_and_the_operation_not_complete():
    operation, _final = at_final_tick()

    # The final tick's worker died: nothing settles it, so the operation stays running ...
    assert not services.final_tick_settled(operation.pk)
    assert services.sweep(now=timezone.now()).completed == 0
    # ... until the sweeper gives up on it, long after its claim.
    assert services.sweep(now=timezone.now() + timedelta(hours=1)).completed == 1

    done = Operation.objects.get(pk=operation.pk)
    assert done.state == OperationState.COMPLETED_PARTIAL
    assert (done.expected, done.collected, done.missed, done.shortfall) == (2, 1, 1, 1)
    assert reasons(done) == {("missed", services.NEVER_SETTLED): 1}
    assert_accounted(done)


def test_duplicate_staging_records_one_transaction():
    operation = make_operation()
    capture, _ = uploaded_capture(operation)
    [first] = staging.stage_captures([capture.pk])
    # A duplicate that raced past the state check, still holding the spool file:
    spool_copy = storage.usable_spool_dir() / "duplicate.bin"
    spool_copy.write_bytes(b"PNN\x04")
    capture.refresh_from_db()
    type(capture).objects.filter(pk=capture.pk).update(
        state=CaptureState.UPLOADED, spool_path=str(spool_copy)
    )
    uploaded_capture_data = (storage.storage_root() / first.stored_path).read_bytes()

    second = staging.stage_captures([capture.pk])

    assert second == []
    assert Transaction.objects.filter(capture=capture).count() == 1
    assert Operation.objects.get(pk=operation.pk).collected == 1
    assert (storage.storage_root() / first.stored_path).read_bytes() == uploaded_capture_data


def test_wrong_test_type_in_header_fails_the_capture():
    operation = make_operation()
    chan_est = pnm_file(
        PnmTest.CHANNEL_ESTIMATION, channel_id=193, mac="02:00:5e:00:00:01", capture_time=1
    )
    capture, _ = uploaded_capture(operation, data=chan_est)  # for an RxMER capture

    assert staging.stage_captures([capture.pk]) == []

    capture.refresh_from_db()
    assert capture.state == CaptureState.FAILED
    assert (
        "expected DS_OFDM_RXMER_PER_SUBCAR, the header says DS_OFDM_CHAN_EST_COEF" in capture.error
    )
    assert Operation.objects.get(pk=operation.pk).failed == 1


def test_storage_error_is_clear_and_spool_file_kept(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the storage root should be")
    settings.FIELDRELAY_STORAGE_ROOT = blocker
    operation = make_operation()
    capture, data = uploaded_capture(operation)

    with pytest.raises(storage.StorageUnavailable, match=r"storage root .* is not writable"):
        staging.stage_captures([capture.pk])

    capture.refresh_from_db()
    assert capture.state == CaptureState.UPLOADED
    assert Path(capture.spool_path).read_bytes() == data
    settings.FIELDRELAY_STORAGE_ROOT = tmp_path / "storage"
    with django_capture_on_commit_callbacks(execute=True):
        assert len(staging.stage_captures([capture.pk])) == 1  # the retry succeeds
    assert not os.path.exists(capture.spool_path)


def test_one_batch_records_every_waiting_file_once_and_counts_each_operation(
    django_capture_on_commit_callbacks,
):
    first = make_operation()
    second = make_operation(make_modem(2))
    a, data_a = uploaded_capture(first, tick=1, channel_id=193)
    b, _ = uploaded_capture(first, tick=1, channel_id=194)
    c, _ = uploaded_capture(second, tick=1)
    already = stored_transaction(second, tick=2)
    bad, _ = uploaded_capture(second, tick=3, data=b"not a PNM file at all")
    gone, _ = uploaded_capture(first, tick=2)
    gone.refresh_from_db()
    Path(gone.spool_path).unlink()

    with django_capture_on_commit_callbacks(execute=True):
        records = staging.stage_captures([gone.pk, a.pk, bad.pk, already.capture_id, b.pk, c.pk])

    assert sorted(record.capture_id for record in records) == sorted([a.pk, b.pk, c.pk])
    assert Transaction.objects.filter(capture_id=already.capture_id).get() == already
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.collected, first.failed) == (2, 1)
    assert (second.collected, second.failed) == (2, 1)  # c and the earlier one; bad failed
    for capture in (a, b, c):
        capture.refresh_from_db()
        assert capture.state == CaptureState.STORED
        assert not Path(capture.spool_path).exists()
    bad.refresh_from_db()
    gone.refresh_from_db()
    assert bad.state == gone.state == CaptureState.FAILED
    assert "not a PNM file" in bad.error
    assert "disappeared before staging" in gone.error
    record_a = Transaction.objects.get(capture=a)
    assert (record_a.pk, record_a.device_details) == (
        next(record.pk for record in records if record.capture_id == a.pk),
        {},
    )
    assert record_a.sha256 == hashlib.sha256(data_a).hexdigest()
    assert b"".join(storage.iter_decompressed(record_a.stored_path)) == data_a


def test_a_storage_failure_mid_batch_keeps_what_was_stored_and_the_retry_does_the_rest(
    django_capture_on_commit_callbacks,
):
    first = make_operation()
    second = make_operation(make_modem(2))
    a, _ = uploaded_capture(first)
    b, data_b = uploaded_capture(second)
    blocked = storage.storage_root() / "pnm" / second.modem.mac_hex  # b's folder is a file
    shutil.rmtree(blocked, ignore_errors=True)  # the session's storage root is shared
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("in the way")

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(storage.StorageUnavailable),
    ):
        staging.stage_captures([a.pk, b.pk])

    assert Transaction.objects.filter(capture=a).exists()
    assert not Transaction.objects.filter(capture=b).exists()
    b.refresh_from_db()
    assert b.state == CaptureState.UPLOADED
    assert Path(b.spool_path).read_bytes() == data_b
    blocked.unlink()
    with django_capture_on_commit_callbacks(execute=True):
        retried = staging.stage_captures([a.pk, b.pk])  # the task's retry: the same batch
    assert [record.capture_id for record in retried] == [b.pk]
    assert Operation.objects.get(pk=first.pk).collected == 1
    assert Operation.objects.get(pk=second.pk).collected == 1


def test_unwritable_spool_falls_back_to_a_user_dir(settings, tmp_path, caplog):
    blocker = tmp_path / "spool-file"
    blocker.write_text("x")
    settings.FIELDRELAY_SPOOL_DIR = blocker / "spool"

    spool = storage.usable_spool_dir()

    assert spool.name == f"spool-{os.getuid()}"
    assert "NOT WRITABLE" in caplog.text


def test_sweeper_restores_a_lost_schedule_and_expires_overdue_captures():
    operation = make_operation(duration_s=600, sample_interval_s=10)
    Operation.objects.filter(pk=operation.pk).update(next_tick_at=None)
    uploaded_capture(operation)
    pending = rxmer_capture(operation, 2, 194, "late.bin")
    assert pending is not None
    type(pending).objects.filter(pk=pending.pk).update(deadline=timezone.now())

    result = services.sweep()

    assert result.rescheduled == 1
    assert Operation.objects.get(pk=operation.pk).next_tick_at == operation.started_at
    assert result.expired == 1
    pending.refresh_from_db()
    assert pending.state == CaptureState.FAILED
    assert Operation.objects.get(pk=operation.pk).last_error.endswith("by its deadline")
    assert result.restage == []  # the uploaded one is not overdue yet


def test_sweeper_runs_a_lost_final_tick():
    operation = make_operation(duration_s=20, sample_interval_s=10)
    Operation.objects.filter(pk=operation.pk).update(ends_at=timezone.now() - timedelta(seconds=60))
    assert services.sweep().late_final == [operation.pk]


def test_failures_in_a_row_fail_the_operation(settings):
    settings.PNM_MAX_CONSECUTIVE_FAILURES = 2
    operation = make_operation()
    services.tick_failed(operation.pk, "modem did not answer", "SnmpTimeout", tick=1)
    assert Operation.objects.get(pk=operation.pk).state == OperationState.RUNNING

    services.tick_failed(operation.pk, "modem did not answer", "SnmpTimeout", tick=2)

    failed = Operation.objects.get(pk=operation.pk)
    assert failed.state == OperationState.FAILED
    assert failed.last_error == "modem did not answer (2 failures in a row)"
    assert (failed.expected, failed.failed, failed.cancelled) == (7, 2, 5)
    assert_accounted(failed)
    assert Operation.objects.get(pk=operation.pk).next_tick_at is None


def test_two_ticks_in_one_second_get_distinct_file_names():
    operation = make_operation()

    def name(offset: int) -> str:
        return f"ds_ofdm_rxmer_per_subcar_020000000000_193_{1_700_000_000 + offset}.bin"

    first = rxmer_capture(operation, 1, 193, name)
    second = rxmer_capture(operation, 2, 193, name)
    again = rxmer_capture(operation, 2, 193, name)

    assert first is not None
    assert second is not None
    assert first.file_name.endswith("_1700000000.bin")
    assert second.file_name.endswith("_1700000001.bin")
    assert again is None  # the same (tick, channel) twice: no second row


def test_a_cmts_admits_its_cap_of_captures_and_frees_a_slot_with_its_lock(settings):
    """Slots are leases under the modem lock's token: the (cap + 1)-th is refused until one
    is released, modems without a CMTS (or with the cap off) take none."""
    settings.PNM_MAX_IN_FLIGHT_PER_CMTS = 2
    cmts = f"hub-{os.getpid()}-{id(settings)}"
    first = triggering.take_cmts_slot(cmts, "token-a")
    second = triggering.take_cmts_slot(cmts, "token-b")
    assert first.startswith(f"pnm:cmts-slot:{cmts}:")
    assert second.startswith(f"pnm:cmts-slot:{cmts}:")
    assert first != second
    with pytest.raises(triggering.CmtsFull, match="2 captures in flight"):
        triggering.take_cmts_slot(cmts, "token-c")
    assert triggering.take_cmts_slot("", "token-c") == ""

    triggering.unlock_modem(999_999, "token-a", first)

    assert triggering.take_cmts_slot(cmts, "token-c") == first
    settings.PNM_MAX_IN_FLIGHT_PER_CMTS = 0
    assert triggering.take_cmts_slot(cmts, "token-d") == ""
    for token, key in (("token-b", second), ("token-c", first)):
        triggering.unlock_modem(999_999, token, key)


def test_a_tick_beyond_the_cmts_cap_is_missed_with_its_reason():
    operation = make_operation(duration_s=10, sample_interval_s=10)  # 2 ticks
    services.plan_slots(operation, {RXMER: [193, 194]})
    first = claim(operation, 5)

    services.tick_missed(operation, first.number, services.CMTS_FULL)

    after = Operation.objects.get(pk=operation.pk)
    assert (after.expected, after.missed, after.skipped, after.failed) == (4, 2, 0, 0)
    assert reasons(after) == {("missed", services.CMTS_FULL): 2}


def in_flight(operation: Operation, tick: int, channel_id: int, lease: str):
    """A capture of ``tick`` triggered and measuring under the modem lease ``lease``."""
    capture = rxmer_capture(operation, tick, channel_id, f"lost-{tick}-{channel_id}")
    assert capture is not None
    services.captures_triggered([capture], lease=lease)
    return capture


def test_a_tick_whose_lease_ran_out_is_settled_by_the_sweeper():
    operation = make_operation(duration_s=10, sample_interval_s=10)  # 2 ticks
    services.plan_slots(operation, {RXMER: [193, 194]})
    first = claim(operation, 5)
    lease = locks.acquire(services.modem_lock_key(operation.modem_id), 30)
    assert lease is not None
    capture = in_flight(operation, first.number, 193, lease.token)

    assert services.sweep().abandoned == 0  # its chain still renews the lease
    assert Operation.objects.get(pk=operation.pk).inflight_lease == lease.token

    lease.release()  # as if it ran out: the worker died mid-measurement
    assert services.sweep().abandoned == 1
    assert services.sweep().abandoned == 0  # settled once

    capture.refresh_from_db()
    assert capture.state == CaptureState.FAILED
    assert "abandoned: its modem lease" in capture.error
    after = Operation.objects.get(pk=operation.pk)
    assert after.state == OperationState.RUNNING
    # 193 was measuring, 194 never triggered: both lost with the worker.
    assert (after.triggered, after.failed, after.collected) == (1, 2, 0)
    assert reasons(after) == {("failed", services.WORKER_LOST): 2}
    assert (after.inflight_tick, after.inflight_lease) == (None, "")
    assert "abandoned: its modem lease" in after.last_error
    assert after.consecutive_failures == 0  # our crash says nothing about the modem


def test_a_chain_ending_late_does_not_clear_a_newer_ticks_record():
    operation = make_operation(duration_s=30, sample_interval_s=10)
    services.plan_slots(operation, {RXMER: [193]})
    claim(operation, 5)
    newer = claim(operation, 15)
    capture = rxmer_capture(operation, newer.number, 193, "newer")
    assert capture is not None
    services.captures_triggered([capture], "newer-token")

    services.tick_over(operation.pk, "older-token", final=False)

    assert Operation.objects.get(pk=operation.pk).inflight_lease == "newer-token"
    services.tick_over(operation.pk, "newer-token", final=False)
    assert Operation.objects.get(pk=operation.pk).inflight_tick is None


def test_a_final_tick_lost_with_its_worker_completes_the_operation_at_the_next_sweep():
    """Not an hour later (the give-up rule): the lease says at once that the chain is dead."""
    operation, final = at_final_tick()
    in_flight(operation, final.number, 193, "a-lease-nobody-holds")

    result = services.sweep()

    assert result.abandoned == 1
    done = Operation.objects.get(pk=operation.pk)
    assert done.state == OperationState.COMPLETED_PARTIAL
    assert (done.expected, done.collected, done.failed, done.shortfall) == (2, 1, 1, 1)
    assert reasons(done) == {("failed", services.WORKER_LOST): 1}
    assert_accounted(done)


def test_a_tick_reported_twice_as_not_run_is_counted_once():
    """A trigger is acknowledged after its task: one whose worker died after counting a
    skipped or lapsed tick is delivered again and reports the tick again. The counters
    take it once."""
    operation = make_operation(duration_s=20, sample_interval_s=10)  # 3 ticks
    services.plan_slots(operation, {RXMER: [193, 194]})
    first = claim(operation, 1)
    services.tick_skipped(operation, first.number)
    services.tick_skipped(operation, first.number)
    services.tick_lapsed(operation.pk, first.number, services.QUEUED_TOO_LONG)
    second = claim(operation, 11)
    services.tick_lapsed(operation.pk, second.number, services.QUEUED_TOO_LONG)
    services.tick_lapsed(operation.pk, second.number, services.QUEUED_TOO_LONG)

    after = Operation.objects.get(pk=operation.pk)
    assert (after.expected, after.skipped, after.missed, after.failed) == (6, 2, 2, 0)
    assert reasons(after) == {
        ("skipped", services.MODEM_BUSY): 2,
        ("missed", services.QUEUED_TOO_LONG): 2,
    }


def test_a_trigger_delivered_again_late_counts_its_tick_once():
    """The trigger task itself, run twice with the same message (as a redelivery after
    its worker died): a tick that waited past its grace is counted missed once."""
    from captures import tasks

    operation = make_operation(duration_s=20, sample_interval_s=10)
    services.plan_slots(operation, {RXMER: [193]})
    first = claim(operation, 1)
    stale = operation.tick_due_at(first.number).timestamp() - 60
    for _ in range(2):
        result = tasks.trigger_ticks.apply(args=([[operation.pk, first.number, stale]],))
        assert result.get() == 0

    after = Operation.objects.get(pk=operation.pk)
    assert (after.missed, after.triggered) == (1, 0)
    assert reasons(after) == {("missed", services.QUEUED_TOO_LONG): 1}


@pytest.mark.django_db
def test_a_trigger_s_file_name_taken_by_another_tick_moves_to_the_next_second():
    operation = make_operation(make_modem(1))
    taken = rxmer_capture(operation, 1, 193, "rxmer_100.bin")
    assert taken is not None

    def name(test_type: str, offset: int) -> str:
        return f"rxmer_{100 + offset}.bin"

    made = services.create_captures(operation, 2, PnmTest.RXMER, 193, 3, name, 5.0)
    again = services.create_captures(operation, 2, PnmTest.RXMER, 193, 3, name, 5.0)

    assert made is not None
    assert [capture.file_name for capture in made] == ["rxmer_101.bin"]
    assert made[0].pk != taken.pk
    assert made[0].state == CaptureState.PENDING
    assert again is None  # this (tick, test, channel) was triggered already


def test_a_final_chain_ending_before_its_file_is_staged_costs_one_statement():
    """The usual end of a final tick: its file is in the spool, not stored yet. One UPDATE
    flags the tick and clears its in-flight record; the staging of the file, which reads the
    flag under the same row lock, completes the operation."""
    operation, final = at_final_tick()
    capture, _ = uploaded_capture(operation, tick=final.number, channel_id=193)
    services.captures_triggered([capture], lease="final-token")

    with CaptureQueriesContext(connection) as queries:
        services.tick_over(operation.pk, "final-token", final=True)

    assert len(queries.captured_queries) == 1, queries.captured_queries
    flagged = Operation.objects.get(pk=operation.pk)
    assert (flagged.state, flagged.final_tick_done) == (OperationState.RUNNING, True)
    assert (flagged.inflight_tick, flagged.inflight_lease) == (None, "")
    staging.stage_captures([capture.pk])
    done = Operation.objects.get(pk=operation.pk)
    assert (done.state, done.collected, done.expected) == (OperationState.COMPLETED, 2, 2)


def test_a_final_chain_ending_after_its_captures_settled_completes_the_operation():
    operation, final = at_final_tick()
    capture = in_flight(operation, final.number, 193, "final-token")
    services.fail_capture(capture.pk, "no file", "UploadTimeout")
    assert Operation.objects.get(pk=operation.pk).state == OperationState.RUNNING

    services.tick_over(operation.pk, "final-token", final=True)

    done = Operation.objects.get(pk=operation.pk)
    assert (done.state, done.final_tick_done) == (OperationState.COMPLETED_PARTIAL, True)
    assert (done.inflight_tick, done.inflight_lease) == (None, "")


def test_a_stale_final_chain_flags_the_final_tick_but_leaves_a_newer_record():
    operation, final = at_final_tick()
    in_flight(operation, final.number, 193, "final-token")

    services.tick_over(operation.pk, "stale-token", final=True)

    after = Operation.objects.get(pk=operation.pk)
    assert (after.state, after.final_tick_done) == (OperationState.RUNNING, True)
    assert (after.inflight_tick, after.inflight_lease) == (final.number, "final-token")
