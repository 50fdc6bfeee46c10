"""PyPNM's three JSON manifests, from the database (``manage.py export_manifests <dir>``).

Writes ``operation_capture.json``, ``capture_group.json`` and ``transactions.json`` in the
seed's shapes (1.6.4: operation family, metadata, operation_status, compression block) so
tools written for PyPNM's files keep working. ``--files`` also copies the stored (zstd)
files into ``<dir>/pnm/`` under their manifest names, making ``<dir>`` a complete data
directory that ``import_pypnm`` reads back. Rows are streamed, each file written to a
temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.db.models import Prefetch

from captures import storage
from captures.models import CaptureGroup, Operation, Transaction
from captures.pypnm_import import GROUP_ONLY, IMPORT_KEY, UNASSIGNED

BATCH = 2000


def _epoch(value) -> int:
    return int(value.timestamp()) if value else 0


def _import_kind(operation: Operation) -> str | None:
    return (operation.metadata.get(IMPORT_KEY) or {}).get("kind")


def operation_entries() -> Iterator[tuple[str, dict]]:
    operations = Operation.objects.select_related("capture_group").order_by("id")
    for op in operations.iterator(chunk_size=BATCH):
        if _import_kind(op) in (UNASSIGNED, GROUP_ONLY):
            continue  # PyPNM had no operation for these
        yield (
            op.operation_id,
            {
                "capture_group_id": op.capture_group.capture_group_id,
                "created": _epoch(op.created),
                "operation": {"name": op.name, "measure_mode": op.measure_mode},
                "metadata": {
                    "mac_address": op.metadata.get("mac_address", ""),
                    "system_description": op.metadata.get("system_description") or {},
                },
                "operation_status": {
                    "state": op.state,
                    "collected": op.collected,
                    "time_remaining": op.time_remaining,
                    "updated": _epoch(op.updated),
                },
            },
        )


def group_entries() -> Iterator[tuple[str, dict]]:
    members = Prefetch(
        "transactions", queryset=Transaction.objects.order_by("id").only("id", "transaction_id")
    )
    groups = CaptureGroup.objects.prefetch_related(members, "operation").order_by("id")
    for group in groups.iterator(chunk_size=BATCH):
        holder = getattr(group, "operation", None)
        if holder is not None and _import_kind(holder) == UNASSIGNED:
            continue  # PyPNM kept these transactions in no group
        yield (
            group.capture_group_id,
            {
                "created": _epoch(group.created),
                "transactions": [t.transaction_id for t in group.transactions.all()],
            },
        )


def transaction_entry(record: Transaction) -> dict:
    return {
        "timestamp": _epoch(record.timestamp),
        "mac_address": record.mac_address,
        "pnm_test_type": record.pnm_test_type,
        "filename": record.filename,
        "compression": record.compression,
        "device_details": record.device_details or {},
    }


def transaction_entries() -> Iterator[tuple[str, dict]]:
    for record in Transaction.objects.order_by("id").iterator(chunk_size=BATCH):
        yield record.transaction_id, transaction_entry(record)


def write_json_object(path: Path, entries: Iterable[tuple[str, dict]]) -> int:
    """``{"id": {...}, ...}`` written entry by entry (never the whole DB in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    count = 0
    try:
        with os.fdopen(fd, "w") as out:
            out.write("{")
            for key, value in entries:
                out.write(",\n" if count else "\n")
                out.write(f"    {json.dumps(key)}: {json.dumps(value)}")
                count += 1
            out.write("\n}\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def copy_files(target: Path) -> int:
    """Stored (compressed) files into ``target/pnm/`` under their manifest names."""
    pnm_dir = target / "pnm"
    pnm_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    records = Transaction.objects.order_by("id").only("filename", "stored_path")
    for record in records.iterator(chunk_size=BATCH):
        with (
            storage.open_stored(record.stored_path) as src,
            (pnm_dir / record.filename).open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
        count += 1
    return count


def export(target: Path, *, with_files: bool = False) -> dict[str, int]:
    counts = {
        "operations": write_json_object(target / "operation_capture.json", operation_entries()),
        "capture_groups": write_json_object(target / "capture_group.json", group_entries()),
        "transactions": write_json_object(target / "transactions.json", transaction_entries()),
    }
    if with_files:
        counts["files"] = copy_files(target)
    return counts
