"""Staging: a received PNM file becomes a compressed stored file and one Transaction.

Order matters for "nothing is lost": the file is stored first (atomically), then the row
is written, and the spool copy is deleted only after the row is committed. A duplicate
staging of the same capture hits the one-transaction-per-capture constraint and counts
nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from captures import services, storage
from captures.analyses import fleet
from captures.models import Capture, CaptureState, Operation, Transaction
from captures.pnm import parse
from captures.pnm.cursor import Cursor
from captures.pnm.errors import PnmFormatError
from captures.pnm.header import read_header
from captures.pnm.spectrum import parse_snmp_spectrum
from core.rows import insert_rows, load_all, load_all_with
from devices.links.pnm import PnmTest

log = logging.getLogger(__name__)


class NotStaged(Exception):
    """The file was refused (bad header, wrong test type) and its capture failed."""


class Staged(NamedTuple):
    """A capture's file, stored and waiting for its transaction row."""

    capture: Capture
    stored_name: str
    stored: storage.StoredFile
    summary_part: fleet.Part | None


def check_header(data: bytes, expected_test_type: str) -> None:
    """The PNN/PNM header must announce the test we triggered (the SNMP-only spectrum has
    no header: its segments must parse)."""
    if expected_test_type == PnmTest.SPECTRUM_ANALYZER_SNMP:
        try:
            parse_snmp_spectrum(data)
        except PnmFormatError as exc:
            raise NotStaged(f"not an SNMP amplitude walk: {exc}") from None
        return
    try:
        header = read_header(Cursor(data))
    except PnmFormatError as exc:
        raise NotStaged(f"not a PNM file: {exc}") from None
    if header.test_type != expected_test_type:
        raise NotStaged(f"expected {expected_test_type}, the header says {header.test_type}")


def stage_captures(capture_pks: Sequence[int]) -> list[Transaction]:
    """Store the spooled files of uploaded captures and record their transactions.

    The receiver forwards the files that arrived together as one batch: one task, one read
    per table, one INSERT and one commit for all of them, so under load a file costs less,
    not more. A capture already stored (a duplicate delivery) or no longer waiting is
    skipped. Raises ``storage.StorageUnavailable`` (spool files stay) for the task to retry;
    what was stored before it is recorded first, so the retry skips those.
    """
    # Each table read once, without the ORM's compile (a third of this task's CPU).
    captures = load_all(Capture, {"id": list(capture_pks)})
    waiting = [capture for capture in captures if _still_waiting(capture)]
    operations = {
        operation.pk: operation
        for operation in load_all_with(
            Operation, {"id": sorted({c.operation_id for c in waiting})}, "modem"
        )
    }
    ready: list[Staged] = []
    unavailable: storage.StorageUnavailable | None = None
    for capture in waiting:
        if capture.operation_id not in operations:
            continue  # deleted meanwhile (with its captures)
        capture.operation = operations[capture.operation_id]
        try:
            stored = _store(capture)
        except storage.StorageUnavailable as exc:
            unavailable = exc
            break
        if stored is not None:
            ready.append(stored)
    try:
        records = _record(ready)
    except IntegrityError:  # a constraint the batch did not foresee: one at a time
        records = [record for one in ready for record in _record_alone(one)]
    if unavailable is not None:
        raise unavailable
    return records


def _still_waiting(capture: Capture) -> bool:
    """Uploaded and not yet stored; the spool copy of a capture cancelled or failed while
    its file was in flight is deleted."""
    if capture.state == CaptureState.UPLOADED:
        return True
    if capture.state != CaptureState.STORED and capture.spool_path:
        Path(capture.spool_path).unlink(missing_ok=True)
    return False


def _store(capture: Capture) -> Staged | None:
    """``capture``'s spooled upload stored (and its summary part, when its operation asks
    for one); None (capture failed) when the file is gone or is not the test we
    triggered."""
    spool = Path(capture.spool_path)
    try:
        data = spool.read_bytes()
    except FileNotFoundError:
        services.fail_capture(
            capture.pk, f"spool file {spool.name} disappeared before staging", "SpoolFileLost"
        )
        return None
    try:
        check_header(data, capture.test)
    except NotStaged as exc:
        services.fail_capture(capture.pk, f"{spool.name}: {exc}", type(exc).__name__)
        spool.unlink(missing_ok=True)
        return None
    stored_name = capture.file_name + ".zst"
    stored = storage.store_compressed(
        data,
        storage.stored_relative_path(capture.operation.modem.mac_hex, stored_name),
        settings.PNM_ZSTD_LEVEL,
    )
    return Staged(capture, stored_name, stored, _summary_part(capture, data))


def _summary_part(capture: Capture, data: bytes) -> fleet.Part | None:
    """The file's part of its modem's summary (``fleet.file_part``), while its bytes are in
    memory; None when its operation does not summarise files or the body does not parse
    (the file is stored all the same: the header was right)."""
    if not capture.operation.summarise_files or capture.test not in fleet.PART_TESTS:
        return None
    try:
        return fleet.file_part(parse(data))
    except PnmFormatError as exc:
        log.warning("capture %s: no summary part, the file does not parse: %s", capture.pk, exc)
        return None


def _record_alone(one: Staged) -> list[Transaction]:
    try:
        return _record([one])
    except IntegrityError:
        log.exception("capture %s could not be recorded", one.capture.pk)
        return []


def _record(ready: list[Staged]) -> list[Transaction]:
    """One transaction row per stored file, the captures marked stored and counted, then
    the spool copies deleted and the operations whose final tick had run completed.

    The captures' UPDATE comes first and locks their rows: a duplicate staging of the same
    capture waits for it and then finds the capture stored. The final-tick flags come back
    from the counter UPDATEs, read under their row locks, so a final tick settling at the
    same moment either is seen here or sees these captures stored.
    """
    if not ready:
        return []
    now = timezone.now()
    with transaction.atomic():
        won = services.mark_stored([entry.capture.pk for entry in ready])
        fresh = [entry for entry in ready if entry.capture.pk in won]
        records = insert_rows([_transaction(entry, now) for entry in fresh])
        final_tick_done = services.captures_collected([entry.capture for entry in fresh])
    for entry in ready:
        if entry.capture.pk not in won:
            log.info("capture %s was already recorded; duplicate staging ignored", entry.capture.pk)
    spools = [Path(entry.capture.spool_path) for entry in fresh if entry.capture.spool_path]

    def delete_spooled() -> None:
        for spool in spools:
            spool.unlink(missing_ok=True)

    transaction.on_commit(delete_spooled)
    services.maybe_complete(*final_tick_done)
    return records


def _transaction(staged: Staged, now: datetime) -> Transaction:
    capture = staged.capture
    operation = capture.operation
    system_description = operation.metadata.get("system_description") or {}
    return Transaction(
        capture=capture,
        capture_group_id=operation.capture_group_id,
        modem=operation.modem,
        timestamp=now,
        mac_address=operation.modem.mac_address,
        pnm_test_type=capture.test,
        channel_id=capture.channel_id,
        filename=staged.stored_name,
        **staged.stored.transaction_fields(),
        device_details={"system_description": system_description} if system_description else {},
        summary_part=staged.summary_part,
    )
