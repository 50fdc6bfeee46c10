"""Staging: a received PNM file becomes a compressed stored file and one Transaction.

Order matters for "nothing is lost": the file is stored first (atomically), then the row
is written, and the spool copy is deleted only after the row is committed. A duplicate
staging of the same capture hits the one-transaction-per-capture constraint and counts
nothing twice.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from captures import services, storage
from captures.models import Capture, CaptureState, Operation, Transaction
from captures.pnm.cursor import Cursor
from captures.pnm.errors import PnmFormatError
from captures.pnm.header import read_header
from captures.pnm.spectrum import parse_snmp_spectrum
from core.rows import load_one
from devices.links.pnm import PnmTest

log = logging.getLogger(__name__)


class NotStaged(Exception):
    """The file was refused (bad header, wrong test type) and its capture failed."""


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


def stage_capture(capture_pk: int) -> Transaction | None:
    """Store the spooled file of an uploaded capture and record its transaction.

    Raises ``storage.StorageUnavailable`` (the spool file stays) for the task to retry.
    """
    capture = load_one(Capture, {"id": capture_pk})  # each row without the ORM's compile
    if capture is None or capture.state == CaptureState.STORED:
        return None  # a duplicate delivery: the first one recorded it
    if capture.state != CaptureState.UPLOADED:
        if capture.spool_path:  # cancelled or failed while the file was in flight
            Path(capture.spool_path).unlink(missing_ok=True)
        return None
    spool = Path(capture.spool_path)
    operation = services.operation_with_modem({"id": capture.operation_id})
    if operation is None:
        return None  # deleted meanwhile (with its captures)
    capture.operation = operation
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
        storage.stored_relative_path(operation.modem.mac_hex, stored_name),
        settings.PNM_ZSTD_LEVEL,
    )
    record, final_tick_done = _record(capture, operation, stored_name, stored)
    if record is not None:
        transaction.on_commit(lambda: spool.unlink(missing_ok=True))
        if final_tick_done:
            services.maybe_complete(operation.pk)
    return record


def _record(
    capture: Capture, operation: Operation, stored_name: str, stored: storage.StoredFile
) -> tuple[Transaction | None, bool]:
    """The transaction (None for a duplicate staging), and whether the operation's final
    tick had run when it was counted: only then can this file complete the operation.

    ``final_tick_done`` is read after the counter UPDATE, under its row lock, so a final
    tick settling at the same moment either is seen here or sees this capture stored.
    """
    system_description = operation.metadata.get("system_description") or {}
    now = timezone.now()
    try:
        with transaction.atomic():
            record = Transaction.objects.create(
                capture=capture,
                capture_group_id=operation.capture_group_id,
                modem=operation.modem,
                timestamp=now,
                mac_address=operation.modem.mac_address,
                pnm_test_type=capture.test,
                channel_id=capture.channel_id,
                filename=stored_name,
                **stored.transaction_fields(),
                device_details=(
                    {"system_description": system_description} if system_description else {}
                ),
            )
            changed = Capture.objects.filter(pk=capture.pk, state=CaptureState.UPLOADED).update(
                state=CaptureState.STORED
            )
            if not changed:
                raise IntegrityError("capture is no longer waiting for its file")
            services.capture_collected(capture)
            counted = Operation.objects.filter(pk=operation.pk)
            final_tick_done = counted.values_list("final_tick_done", flat=True).get()
    except IntegrityError:
        log.info("capture %s was already recorded; duplicate staging ignored", capture.pk)
        return None, False
    return record, final_tick_done
