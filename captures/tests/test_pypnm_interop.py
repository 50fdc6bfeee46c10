"""import_pypnm / export_manifests against a PyPNM-like data directory built from the samples."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import zstandard
from django.core.management import call_command
from django.http import StreamingHttpResponse

from captures import services, storage
from captures.models import Capture, CaptureGroup, Operation, Transaction
from captures.pypnm_import import IMPORT_KEY, UNASSIGNED, import_data_dir
from devices.models import CableModem

SAMPLES = Path(__file__).parent / "data" / "pnm"
DEMO_1 = "ds_ofdm_rxmer_per_subcar_aabbccddeeff_193_1764820677.bin"
DEMO_2 = "ds_ofdm_rxmer_per_subcar_aabbccddeeff_193_1764820691.bin"
CHAN_EST = "ds_ofdm_chan_est_coef_a1b2c3d4e5f6_34_1764820700.bin"
FEC = "ds_ofdm_fec_summary_aabbccddeeff_160_1764820680.bin"
MOD_PROFILE = "ds_ofdm_modulation_profile_aabbccddeeff_34_1764820681.bin"
SYSTEM = {
    "HW_REV": "1.0",
    "VENDOR": "LANCity",
    "BOOTR": "NONE",
    "SW_REV": "1.0.0",
    "MODEL": "LCPET-3",
}

OP_RXMER, GROUP_RXMER = "f6afb2d7df2c4a5c", "10b6ea239641487c"
OP_CHAN, GROUP_CHAN = "0123456789abcdef", "fedcba9876543210"
T1, T2, T3, T4, T5, T6 = (f"{i:016x}" for i in range(1, 7))


def _txn(timestamp: int, mac: str, test: str, filename: str, **extra) -> dict:
    return {
        "timestamp": timestamp,
        "mac_address": mac,
        "pnm_test_type": test,
        "filename": filename,
        "device_details": {"system_description": SYSTEM},
        **extra,
    }


def build_data_dir(root: Path) -> Path:
    """A PyPNM data dir: a 1.6.4 RxMER operation, a 1.0.11 ChanEst operation (zstd file),
    two transactions in no group (the Performance-1 bug) and one whose file is missing."""
    pnm = root / "pnm"
    pnm.mkdir(parents=True)
    shutil.copy(SAMPLES / DEMO_1, pnm / DEMO_1)
    shutil.copy(SAMPLES / DEMO_2, pnm / DEMO_2)
    chan_est = (SAMPLES / "channel_estimation.bin").read_bytes()
    compressed = zstandard.ZstdCompressor(level=3).compress(chan_est)
    (pnm / f"{CHAN_EST}.zst").write_bytes(compressed)
    shutil.copy(SAMPLES / "fec_summary.bin", pnm / FEC)
    shutil.copy(SAMPLES / "modulation_profile.bin", pnm / MOD_PROFILE)
    rxmer, chan = "DS_OFDM_RXMER_PER_SUBCAR", "DS_OFDM_CHAN_EST_COEF"
    mac = "aa:bb:cc:dd:ee:ff"
    manifests = {
        "operation_capture.json": {
            OP_RXMER: {
                "capture_group_id": GROUP_RXMER,
                "created": 1764820670,
                "operation": {"name": "multi_rxmer", "measure_mode": "continuous"},
                "metadata": {"mac_address": mac, "system_description": SYSTEM},
                "operation_status": {
                    "state": "completed",
                    "collected": 2,
                    "time_remaining": 0,
                    "updated": 1764820700,
                },
            },
            OP_CHAN: {"capture_group_id": GROUP_CHAN, "created": 1764820690},
        },
        "capture_group.json": {
            GROUP_RXMER: {"created": 1764820670, "transactions": [T1, T2, ""]},
            GROUP_CHAN: {"created": 1764820690, "transactions": [T3, T6]},
        },
        "transactions.json": {
            T1: _txn(1764820677, mac, rxmer, DEMO_1),
            T2: _txn(1764820691, mac, rxmer, DEMO_2),
            T3: _txn(
                1764820700,
                "a1:b2:c3:d4:e5:f6",
                chan,
                f"{CHAN_EST}.zst",
                compression={
                    "is_compressed": True,
                    "codec": "zstd",
                    "level": 3,
                    "size_before": len(chan_est),
                    "size_after": len(compressed),
                },
            ),
            T4: _txn(1764820680, mac, "DS_OFDM_FEC_SUMMARY", FEC),
            T5: _txn(1764820681, mac, "DS_OFDM_MODULATION_PROFILE", MOD_PROFILE),
            T6: _txn(1764820702, "a1:b2:c3:d4:e5:f6", chan, "never_arrived_34_1764820702.bin"),
        },
    }
    (root / "db").mkdir()
    for name, content in manifests.items():
        (root / "db" / name).write_text(json.dumps(content, indent=4))
    return root


@pytest.fixture
def storage_root(tmp_path: Path, settings) -> Path:
    settings.FIELDRELAY_STORAGE_ROOT = tmp_path / "storage"
    return settings.FIELDRELAY_STORAGE_ROOT


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return build_data_dir(tmp_path / "pypnm-data")


def snapshot() -> dict:
    """Everything the manifests carry, in a comparable form."""
    return {
        "operations": sorted(
            (
                o.operation_id,
                o.name,
                o.measure_mode,
                o.state,
                o.collected,
                o.time_remaining,
                o.capture_group.capture_group_id,
                int(o.created.timestamp()),
                int(o.updated.timestamp()),
                o.modem.mac_address,
                json.dumps(o.metadata.get("system_description"), sort_keys=True),
            )
            for o in Operation.objects.select_related("capture_group", "modem")
            if o.name != UNASSIGNED
        ),
        "groups": sorted(
            (
                g.capture_group_id,
                int(g.created.timestamp()),
                tuple(g.transactions.order_by("id").values_list("transaction_id", flat=True)),
            )
            for g in CaptureGroup.objects.filter(
                operation__name__in=["multi_rxmer", "multi_ds_channel_estimation"]
            )
        ),
        "transactions": sorted(
            (
                t.transaction_id,
                int(t.timestamp.timestamp()),
                t.mac_address,
                t.pnm_test_type,
                t.channel_id,
                t.filename,
                t.sha256,
                t.size_before,
                t.capture_group.operation.name == UNASSIGNED,
                json.dumps(t.device_details, sort_keys=True),
            )
            for t in Transaction.objects.select_related("capture_group__operation")
        ),
    }


@pytest.mark.django_db
def test_import_records_everything_and_reports_orphans(data_dir: Path, storage_root: Path) -> None:
    report = import_data_dir(data_dir)
    assert report.created["operations"] == 2
    assert report.created["capture_groups"] == 2
    assert report.created["transactions"] == 5
    assert sorted(report.unassigned) == [T4, T5]
    assert report.missing_files == ["never_arrived_34_1764820702.bin"]
    assert any("no capture group" in line and T4 in line for line in report.lines())

    op = Operation.objects.get(operation_id=OP_RXMER)
    assert (op.name, op.measure_mode, op.state, op.collected) == (
        "multi_rxmer",
        "continuous",
        "completed",
        2,
    )
    assert op.capture_group.capture_group_id == GROUP_RXMER
    assert op.metadata["system_description"] == SYSTEM
    assert int(op.created.timestamp()) == 1764820670
    assert list(
        op.capture_group.transactions.order_by("timestamp").values_list("transaction_id", flat=True)
    ) == [T1, T2]

    old = Operation.objects.get(operation_id=OP_CHAN)  # 1.0.11 record: family inferred
    assert (old.name, old.state) == ("multi_ds_channel_estimation", "completed")

    for txn_id, name in ((T1, DEMO_1), (T3, "channel_estimation.bin"), (T4, "fec_summary.bin")):
        original = (SAMPLES / name).read_bytes()
        record = Transaction.objects.get(transaction_id=txn_id)
        assert record.sha256 == hashlib.sha256(original).hexdigest()
        assert record.size_before == len(original)
        assert record.filename.endswith(".bin.zst")
        assert b"".join(storage.iter_decompressed(record.stored_path)) == original
        assert (storage_root / record.stored_path).stat().st_size == record.size_after
    assert Transaction.objects.get(transaction_id=T1).channel_id == 193
    orphan = Transaction.objects.get(transaction_id=T4)
    assert orphan.capture_group.operation.name == UNASSIGNED
    assert orphan.pnm_test_type == "DS_OFDM_FEC_SUMMARY"


@pytest.mark.django_db
def test_reimport_is_idempotent(data_dir: Path, storage_root: Path) -> None:
    import_data_dir(data_dir)
    before = snapshot()
    counts = [
        Model.objects.count()
        for Model in (Operation, CaptureGroup, Capture, Transaction, CableModem)
    ]
    report = import_data_dir(data_dir)
    assert sum(report.created.values()) == 0
    assert report.existing["transactions"] == 5
    assert snapshot() == before
    assert counts == [
        Model.objects.count()
        for Model in (Operation, CaptureGroup, Capture, Transaction, CableModem)
    ]


@pytest.mark.django_db
def test_operations_without_transactions_are_imported_and_exported(
    data_dir: Path, storage_root: Path, tmp_path: Path
) -> None:
    """A PyPNM operation that failed before its first file still exists after the move."""
    manifests = data_dir / "db"
    operations = json.loads((manifests / "operation_capture.json").read_text())
    groups = json.loads((manifests / "capture_group.json").read_text())
    failed = {**operations[OP_RXMER], "capture_group_id": "00000000000000aa"}
    failed["operation_status"] = {**failed["operation_status"], "state": "failed", "collected": 0}
    operations["00000000000000bb"] = failed
    groups["00000000000000aa"] = {"created": 1764820600, "transactions": []}
    operations["00000000000000cc"] = {"capture_group_id": "00000000000000dd", "created": 1}
    (manifests / "operation_capture.json").write_text(json.dumps(operations))
    (manifests / "capture_group.json").write_text(json.dumps(groups))

    report = import_data_dir(data_dir)
    assert report.created["operations"] == 3
    assert report.rejected == ["operation 00000000000000cc: malformed record ('mac_address')"]
    op = Operation.objects.get(operation_id="00000000000000bb")
    assert (op.state, op.collected, op.capture_group.capture_group_id) == (
        "failed",
        0,
        "00000000000000aa",
    )
    assert op.capture_group.transactions.count() == 0
    assert import_data_dir(data_dir).existing["operations"] == 3  # the re-run adds nothing

    call_command("export_manifests", str(tmp_path / "out"), stdout=io.StringIO())
    exported = json.loads((tmp_path / "out" / "operation_capture.json").read_text())
    assert exported["00000000000000bb"] == failed
    exported_groups = json.loads((tmp_path / "out" / "capture_group.json").read_text())
    assert exported_groups["00000000000000aa"] == groups["00000000000000aa"]


@pytest.mark.django_db
def test_an_operation_pypnm_had_running_is_imported_as_stopped(
    data_dir: Path, storage_root: Path
) -> None:
    """Nothing drives it here: as 'running' the sweeper would try to (and it has no ends_at)."""
    path = data_dir / "db" / "operation_capture.json"
    operations = json.loads(path.read_text())
    operations[OP_RXMER]["operation_status"].update(state="running", time_remaining=250)
    path.write_text(json.dumps(operations))
    import_data_dir(data_dir)
    op = Operation.objects.get(operation_id=OP_RXMER)
    assert (op.state, op.time_remaining) == ("stopped", 250)
    assert op.metadata[IMPORT_KEY]["state"] == "running"
    assert Operation.objects.filter(state__in=["running", "pending"]).count() == 0
    assert services.sweep().late_final == []


@pytest.mark.django_db
def test_a_damaged_compressed_file_is_reported_and_the_rest_imported(
    data_dir: Path, storage_root: Path
) -> None:
    (data_dir / "pnm" / f"{CHAN_EST}.zst").write_bytes(b"\x00" * 64)
    (data_dir / "pnm" / DEMO_2).rename(data_dir / "pnm" / f"{DEMO_2}.gz")  # not gzip inside
    path = data_dir / "db" / "transactions.json"
    records = json.loads(path.read_text())
    records[T2]["filename"] = f"{DEMO_2}.gz"
    path.write_text(json.dumps(records))
    report = import_data_dir(data_dir)
    assert sorted(line.split(":")[0] for line in report.rejected) == [T2, T3]
    assert all("is unreadable" in line for line in report.rejected)
    assert report.created["transactions"] == 3
    assert not Transaction.objects.filter(transaction_id__in=[T2, T3]).exists()


@pytest.mark.django_db
def test_channel_comes_from_the_file_header_when_the_name_has_none(
    data_dir: Path, storage_root: Path
) -> None:
    cmts_name = "PNMDsMer_aabbccddeeff_1764820691"  # as a CMTS names the upload
    (data_dir / "pnm" / DEMO_2).rename(data_dir / "pnm" / cmts_name)
    path = data_dir / "db" / "transactions.json"
    records = json.loads(path.read_text())
    records[T2]["filename"] = cmts_name
    path.write_text(json.dumps(records))
    import_data_dir(data_dir)
    assert Transaction.objects.get(transaction_id=T2).channel_id == 193
    assert Transaction.objects.get(transaction_id=T4).channel_id == 160  # FEC header = name


@pytest.mark.django_db
def test_command_shows_progress_on_stderr(data_dir: Path, storage_root: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_pypnm", str(data_dir), stdout=out, stderr=err)
    assert "6/6" in err.getvalue()
    assert "[" + "#" * 40 + "]" in err.getvalue()
    assert "transactions: 5 imported" in out.getvalue()


@pytest.mark.django_db
def test_export_has_the_seed_shapes(data_dir: Path, storage_root: Path, tmp_path: Path) -> None:
    import_data_dir(data_dir)
    target = tmp_path / "export"
    call_command("export_manifests", str(target), stdout=io.StringIO())
    operations = json.loads((target / "operation_capture.json").read_text())
    groups = json.loads((target / "capture_group.json").read_text())
    transactions = json.loads((target / "transactions.json").read_text())
    assert set(operations) == {OP_RXMER, OP_CHAN}
    assert operations[OP_RXMER] == {
        "capture_group_id": GROUP_RXMER,
        "created": 1764820670,
        "operation": {"name": "multi_rxmer", "measure_mode": "continuous"},
        "metadata": {"mac_address": "aa:bb:cc:dd:ee:ff", "system_description": SYSTEM},
        "operation_status": {
            "state": "completed",
            "collected": 2,
            "time_remaining": 0,
            "updated": 1764820700,
        },
    }
    assert groups[GROUP_RXMER] == {"created": 1764820670, "transactions": [T1, T2]}
    assert set(groups) == {GROUP_RXMER, GROUP_CHAN}  # the orphans stay in no group
    assert set(transactions) == {T1, T2, T3, T4, T5}
    entry = transactions[T1]
    assert set(entry) == {
        "timestamp",
        "mac_address",
        "pnm_test_type",
        "filename",
        "compression",
        "device_details",
    }
    assert entry["filename"] == DEMO_1 + ".zst"
    assert entry["compression"]["codec"] == "zstd"
    assert entry["compression"]["size_before"] == 7628
    assert entry["compression"]["is_compressed"] is True
    assert entry["device_details"] == {"system_description": SYSTEM}


@pytest.mark.django_db
def test_round_trip_export_then_import_into_an_empty_database(
    data_dir: Path, storage_root: Path, tmp_path: Path
) -> None:
    import_data_dir(data_dir)
    before = snapshot()
    first = tmp_path / "first"
    call_command("export_manifests", str(first), "--files", stdout=io.StringIO())
    assert len(list((first / "pnm").iterdir())) == 5

    for Model in (Transaction, Capture, Operation, CaptureGroup, CableModem):
        Model.objects.all().delete()
    shutil.rmtree(storage_root)

    report = import_data_dir(first)
    assert report.created["transactions"] == 5
    assert snapshot() == before
    second = tmp_path / "second"
    call_command("export_manifests", str(second), stdout=io.StringIO())
    for name in ("operation_capture.json", "capture_group.json", "transactions.json"):
        assert json.loads((second / name).read_text()) == json.loads((first / name).read_text())


@pytest.mark.django_db
def test_pipeline_records_round_trip_through_the_manifests(
    storage_root: Path, tmp_path: Path
) -> None:
    """What our own pipeline recorded exports to a data dir PyPNM tools and import_pypnm read."""
    from tests.factories import make_operation, stored_transaction

    operation = make_operation()
    staged = [stored_transaction(operation, tick) for tick in (1, 2)]
    services.stop_operation(operation)
    operation.refresh_from_db()
    originals = {
        t.transaction_id: b"".join(storage.iter_decompressed(t.stored_path)) for t in staged
    }
    call_command("export_manifests", str(tmp_path / "out"), "--files", stdout=io.StringIO())
    exported = json.loads((tmp_path / "out" / "operation_capture.json").read_text())
    entry = exported[operation.operation_id]
    assert entry["operation_status"]["state"] == operation.state == "stopped"
    assert entry["metadata"]["mac_address"] == operation.modem.mac_address

    for Model in (Transaction, Capture, Operation, CaptureGroup, CableModem):
        Model.objects.all().delete()
    shutil.rmtree(storage_root)
    report = import_data_dir(tmp_path / "out")
    assert (report.created["operations"], report.created["transactions"]) == (1, 2)
    assert report.rejected == report.unassigned == report.missing_files == []
    again = Operation.objects.get(operation_id=operation.operation_id)
    assert (again.state, again.collected) == ("stopped", operation.collected)
    for txn_id, original in originals.items():
        record = Transaction.objects.get(transaction_id=txn_id)
        assert record.capture_group_id == again.capture_group_id
        assert b"".join(storage.iter_decompressed(record.stored_path)) == original
        assert record.sha256 == hashlib.sha256(original).hexdigest()


@pytest.mark.django_db
def test_import_of_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a directory"):
        call_command("import_pypnm", str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match=r"no transactions\.json"):
        call_command("import_pypnm", str(tmp_path / "empty"))


@pytest.mark.django_db
def test_imported_records_are_served_by_the_captures_api(
    data_dir: Path, storage_root: Path
) -> None:
    from rest_framework.test import APIClient

    from tests.helpers import role_user

    import_data_dir(data_dir)
    client = APIClient()
    client.force_authenticate(role_user("ops", "viewer"))
    assert client.get("/api/v1/captures/operations/").status_code == 200
    status = client.get(f"/api/v1/captures/operations/{OP_RXMER}/status/").json()
    assert (status["state"], status["collected"], status["time_remaining"]) == ("completed", 2, 0)
    feed = client.get("/api/v1/captures/transactions/").json()
    assert {t["transaction_id"] for t in feed["results"]} == {T1, T2, T3, T4, T5}
    download = client.get(f"/api/v1/captures/transactions/{T1}/download/")
    assert isinstance(download, StreamingHttpResponse)
    assert b"".join(download.streaming_content) == (SAMPLES / DEMO_1).read_bytes()
