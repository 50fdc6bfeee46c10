"""Bring a PyPNM data directory into the database (``manage.py import_pypnm <data-dir>``).

Reads ``operation_capture.json``, ``capture_group.json`` and ``transactions.json`` (from
``<data-dir>/db/`` as PyPNM lays them out, or from ``<data-dir>`` itself) and the files in
``<data-dir>/pnm/``. Each file is compressed and stored exactly as staging does
(``captures.storage.store_compressed``) and recorded as a Capture + Transaction.

Idempotent: ids already in the database are skipped, so a re-run adds only what is new.
PyPNM records that no operation or no capture group holds (its Performance-1 bug leaves such
transactions) are kept, under a per-modem "unassigned" operation marked in its metadata so
``export_manifests`` writes them back as they were: in no group.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import zstandard
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from captures import storage
from captures.models import (
    OPERATION_TEST,
    Capture,
    CaptureGroup,
    CaptureState,
    Operation,
    OperationState,
    Transaction,
)
from captures.pnm import PnmFormatError, parse
from devices.links.pnm import PnmTest
from devices.models import CableModem

MANIFESTS = ("operation_capture.json", "capture_group.json", "transactions.json")
IMPORT_KEY = "pypnm_import"  # Operation.metadata marker for rows the import had to create
UNASSIGNED = "unassigned"  # holds transactions of no capture group
GROUP_ONLY = "group-only"  # holds a capture group that no operation references
UNKNOWN_IP = "0.0.0.0"  # manifests carry no modem address; set it in the admin
CHANNEL_RE = re.compile(r"_(\d+)_\d+\.bin(?:\.zst|\.gz)?$")
# PyPNM's live service died with PyPNM: an operation it still had running (or pending) is
# imported as stopped, so our scheduler and sweeper never try to drive it.
FINAL_STATES = {
    OperationState.COMPLETED,
    OperationState.STOPPED,
    OperationState.CANCELLED,
    OperationState.FAILED,
}
TEST_OPERATION = {
    "DS_OFDM_RXMER_PER_SUBCAR": ("multi_rxmer", "continuous"),
    "DS_OFDM_CHAN_EST_COEF": ("multi_ds_channel_estimation", "standard"),
}


def _trigger_test(name: str, sample: dict) -> str:
    """The test an imported operation triggered: its family's, else its files' if that is
    a test we trigger ("" for a holder of mixed records)."""
    if name in OPERATION_TEST:
        return OPERATION_TEST[name].value
    value = str(sample.get("pnm_test_type"))
    return value if value in {test.value for test in PnmTest} else ""


class ImportFailed(Exception):
    """The data directory cannot be imported at all (missing, or its manifests unreadable)."""


@dataclass
class ImportReport:
    created: Counter = field(default_factory=Counter)
    existing: Counter = field(default_factory=Counter)
    unassigned: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"{kind}: {self.created[kind]} imported, {self.existing[kind]} already present"
            for kind in ("operations", "capture_groups", "transactions")
        ]
        if self.unassigned:
            out.append(
                f"{len(self.unassigned)} transactions belong to no capture group; imported "
                f"under an '{UNASSIGNED}' operation: {', '.join(self.unassigned)}"
            )
        if self.missing_files:
            out.append(f"{len(self.missing_files)} files missing: {', '.join(self.missing_files)}")
        if self.rejected:
            out.append(f"{len(self.rejected)} not imported: {'; '.join(self.rejected)}")
        return out


class Progress:
    """A one-line progress bar on stderr, redrawn at most ~100 times."""

    def __init__(self, total: int, stream: TextIO, width: int = 40) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.step = max(total // 100, 1)

    def update(self, done: int) -> None:
        if done % self.step and done != self.total:
            return
        filled = self.width * done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total}")
        if done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _epoch(value: object) -> datetime:
    """A PyPNM time stamp (seconds, as a number or a numeric string; absent: 0)."""
    return datetime.fromtimestamp(int(str(value or 0)), tz=UTC)


def _load(root: Path, name: str) -> dict:
    for candidate in (root / "db" / name, root / name):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
            except (OSError, ValueError) as exc:
                raise ImportFailed(f"{candidate}: not readable JSON ({exc})") from None
            if not isinstance(data, dict):
                raise ImportFailed(f"{candidate}: expected a JSON object keyed by id")
            return data
    if name == "transactions.json":
        raise ImportFailed(f"no transactions.json in {root} or {root / 'db'}")
    return {}


def _read_file(pnm_dir: Path, filename: str) -> bytes | None:
    """The original bytes of a PyPNM file, which it may have stored as .zst or .gz."""
    path = pnm_dir / Path(filename).name
    if not path.is_file():
        return None
    raw = path.read_bytes()
    if filename.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(raw).read()
    if filename.endswith(".gz"):
        return gzip.decompress(raw)
    return raw


def _channel_id(name: str, data: bytes) -> int:
    """The channel the file's own header names, else the one in a PyPNM-style file name
    (``..._<channel>_<epoch>.bin``): a CMTS-named upload (``PNMDsMer_<MAC>_<epoch>``) has
    none in its name, and a histogram none in its header."""
    try:
        channel = getattr(parse(data), "channel_id", None)
    except PnmFormatError:
        channel = None
    if channel is None:
        match = CHANNEL_RE.search(name)
        channel = int(match.group(1)) if match else 0
    return channel


def _base_name(filename: str) -> str:
    return re.sub(r"\.(zst|gz)$", "", Path(filename).name)


class Importer:
    def __init__(self, root: Path, level: int, progress_stream: TextIO | None) -> None:
        self.root = root
        self.pnm_dir = root / "pnm"
        self.level = level
        self.progress_stream = progress_stream
        self.report = ImportReport()
        self.modems: dict[str, CableModem] = {}
        self.holders: dict[tuple[str, str], Operation] = {}
        self.operations: dict[str, Operation] = {}

    def run(self) -> ImportReport:
        operations, groups, records = (_load(self.root, name) for name in MANIFESTS)
        group_of_txn = {
            txn: group_id
            for group_id, group in groups.items()
            for txn in group.get("transactions", [])
            if txn  # PyPNM 1.0.11 appends "" for failed samples
        }
        operation_of_group = {op["capture_group_id"]: op_id for op_id, op in operations.items()}
        progress = Progress(len(records), self.progress_stream) if self.progress_stream else None
        for done, (txn_id, record) in enumerate(records.items(), start=1):
            group_id = group_of_txn.get(txn_id)
            try:
                self._import_transaction(
                    txn_id, record, group_id, operations, groups, operation_of_group
                )
            except (KeyError, TypeError, ValueError) as exc:
                self.report.rejected.append(f"{txn_id}: malformed record ({exc})")
            if progress:
                progress.update(done)
        for op_id, op in operations.items():  # operations that never collected a file
            try:
                self._operation(op_id, op, groups, {})
            except (KeyError, TypeError, ValueError) as exc:
                self.report.rejected.append(f"operation {op_id}: malformed record ({exc})")
        return self.report

    def _modem(self, mac: str) -> CableModem:
        mac = mac.lower()
        if mac not in self.modems:
            self.modems[mac], _ = CableModem.objects.get_or_create(
                mac_address=mac, defaults={"ip_address": UNKNOWN_IP}
            )
        return self.modems[mac]

    def _operation(self, op_id: str, op: dict, groups: dict, sample: dict) -> Operation:
        if op_id in self.operations:
            return self.operations[op_id]
        found = Operation.objects.filter(operation_id=op_id).select_related("capture_group")
        if operation := found.first():
            self.report.existing["operations"] += 1
        else:
            operation = self._create_operation(op_id, op, groups, sample)
            self.report.created["operations"] += 1
        self.operations[op_id] = operation
        return operation

    def _create_operation(self, op_id: str, op: dict, groups: dict, sample: dict) -> Operation:
        group_id = op["capture_group_id"]
        group = self._group(group_id, groups.get(group_id, {}))
        metadata = op.get("metadata") or {}
        family = op.get("operation") or {}
        mac = metadata.get("mac_address") or sample["mac_address"]
        default_name, default_mode = TEST_OPERATION.get(
            str(sample.get("pnm_test_type")), ("multi_rxmer", "continuous")
        )
        status = op.get("operation_status") or {}
        created = _epoch(op.get("created"))
        updated = _epoch(status.get("updated") or op.get("created"))
        members = [t for t in groups.get(group_id, {}).get("transactions", []) if t]
        state = status.get("state", OperationState.COMPLETED)
        marker = {"source": str(self.root)}
        if state not in FINAL_STATES:
            marker["state"] = state
            state = OperationState.STOPPED
        operation = Operation.objects.create(
            operation_id=op_id,
            name=family.get("name", default_name),
            measure_mode=family.get("measure_mode", default_mode),
            test=_trigger_test(family.get("name", default_name), sample),
            modem=self._modem(mac),
            capture_group=group,
            metadata={
                "mac_address": mac,
                "system_description": metadata.get("system_description")
                or (sample.get("device_details") or {}).get("system_description")
                or {},
                IMPORT_KEY: marker,
            },
            duration_s=max(int((updated - created).total_seconds()), 1),
            sample_interval_s=1,
            state=state,
            collected=int(status.get("collected", len(members))),
            time_remaining=int(status.get("time_remaining", 0)),
            started_at=created,
            finished_at=updated,
        )
        Operation.objects.filter(pk=operation.pk).update(created=created, updated=updated)
        return operation

    def _group(self, group_id: str, group: dict) -> CaptureGroup:
        found, created = CaptureGroup.objects.get_or_create(capture_group_id=group_id)
        if created:
            CaptureGroup.objects.filter(pk=found.pk).update(created=_epoch(group.get("created")))
            self.report.created["capture_groups"] += 1
        else:
            self.report.existing["capture_groups"] += 1
        return found

    def _holder(self, kind: str, mac: str, group_id: str | None, groups: dict) -> Operation:
        """The operation that holds records PyPNM kept outside any operation (or group)."""
        key = (kind, group_id or mac)
        if key in self.holders:
            return self.holders[key]
        marker = {"kind": kind, "source": str(self.root)}
        modem = self._modem(mac)
        lookup = {"modem": modem, f"metadata__{IMPORT_KEY}__kind": kind}
        if group_id:
            lookup["capture_group__capture_group_id"] = group_id
        holder = Operation.objects.filter(**lookup).first()
        if holder is None:
            group = (
                self._group(group_id, groups.get(group_id, {}))
                if group_id
                else CaptureGroup.objects.create()
            )
            holder = Operation.objects.create(
                name=UNASSIGNED,
                measure_mode=UNASSIGNED,
                test="",
                modem=modem,
                capture_group=group,
                metadata={"mac_address": modem.mac_address, IMPORT_KEY: marker},
                duration_s=1,
                sample_interval_s=1,
                state=OperationState.COMPLETED,
            )
        self.holders[key] = holder
        return holder

    def _import_transaction(
        self,
        txn_id: str,
        record: dict,
        group_id: str | None,
        operations: dict,
        groups: dict,
        operation_of_group: dict,
    ) -> None:
        if Transaction.objects.filter(transaction_id=txn_id).exists():
            self.report.existing["transactions"] += 1
            return
        mac = record["mac_address"].lower()
        if group_id is None:
            operation = self._holder(UNASSIGNED, mac, None, groups)
            self.report.unassigned.append(txn_id)
        elif (op_id := operation_of_group.get(group_id)) is None:
            operation = self._holder(GROUP_ONLY, mac, group_id, groups)
        else:
            operation = self._operation(op_id, operations[op_id], groups, record)
        try:
            data = _read_file(self.pnm_dir, record["filename"])
        except (zstandard.ZstdError, OSError, EOFError) as exc:
            self.report.rejected.append(f"{txn_id}: {record['filename']} is unreadable ({exc})")
            return
        if data is None:
            self.report.missing_files.append(record["filename"])
            return
        self._record(txn_id, record, operation, data)

    def _record(self, txn_id: str, record: dict, operation: Operation, data: bytes) -> None:
        name = _base_name(record["filename"])
        if Capture.objects.filter(file_name=name).exists():
            # Storing would overwrite another transaction's file of the same name.
            self.report.rejected.append(f"{txn_id}: file name {name} is already recorded")
            return
        channel_id = _channel_id(name, data)
        modem = self._modem(record["mac_address"])
        stored = storage.store_compressed(
            data, storage.stored_relative_path(modem.mac_hex, name + ".zst"), self.level
        )
        timestamp = _epoch(record.get("timestamp"))
        try:
            with transaction.atomic():
                last = operation.captures.aggregate(last=Max("tick"))["last"]
                capture = Capture.objects.create(
                    operation=operation,
                    tick=(last or 0) + 1,
                    test=record["pnm_test_type"],
                    channel_id=channel_id,
                    if_index=0,
                    file_name=name,
                    state=CaptureState.STORED,
                    triggered_at=timestamp,
                    deadline=timestamp,
                )
                Transaction.objects.create(
                    transaction_id=txn_id,
                    capture=capture,
                    capture_group=operation.capture_group,
                    modem=modem,
                    timestamp=timestamp,
                    mac_address=record["mac_address"].lower(),
                    pnm_test_type=record["pnm_test_type"],
                    channel_id=channel_id,
                    filename=name + ".zst",
                    **stored.transaction_fields(),
                    device_details=record.get("device_details") or {},
                )
        except IntegrityError as exc:
            self.report.rejected.append(f"{txn_id}: {name} clashes with a stored file ({exc})")
            return
        self.report.created["transactions"] += 1


def import_data_dir(
    root: Path, *, level: int | None = None, progress_stream: TextIO | None = None
) -> ImportReport:
    """Import a PyPNM data directory; see the module docstring."""
    if not root.is_dir():
        raise ImportFailed(f"{root} is not a directory")
    return Importer(root, level or settings.PNM_ZSTD_LEVEL, progress_stream).run()
