"""The receiver with the cache-backed expectations: only waiting captures get in."""

from __future__ import annotations

from pathlib import Path

import pytest
import tftpy
from kombu.exceptions import OperationalError

from captures import expectations, receiving, services
from captures.models import CaptureState
from core.ingester import Item
from devices.links.pnm import PnmTest, default_file_name, stored_file_name
from simulators.pnm_files import pnm_file
from tests.factories import make_modem, make_operation, rxmer_capture
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def upload(receiver, name: str, data: bytes, tmp_path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    client = tftpy.TftpClient("127.0.0.1", receiver.bound_port)
    client.upload(name, str(source), timeout=2, retries=1)


def expect(operation, tick: int = 1):
    modem = operation.modem
    name = stored_file_name(PnmTest.RXMER, modem.mac_address, 193, 1_700_000_000 + tick)
    capture = rxmer_capture(operation, tick, 193, name)
    assert capture is not None
    return capture, expectations.register(capture, modem)


def test_expected_upload_is_marked_uploaded(receiver, tmp_path, monkeypatch):
    queued: list[list[int]] = []
    monkeypatch.setattr("captures.tasks.stage_captures.delay", queued.append)
    operation = make_operation(make_modem(ip_address="127.0.0.1"))
    capture, _ = expect(operation)
    data = pnm_file(PnmTest.RXMER, channel_id=193, mac=operation.modem.mac_address, capture_time=1)

    upload(receiver, capture.file_name, data, tmp_path)

    wait_until(lambda: queued == [[capture.pk]], timeout=10)
    capture.refresh_from_db()
    assert capture.state == CaptureState.UPLOADED
    assert Path(capture.spool_path).read_bytes() == data


@pytest.mark.parametrize("hostile", ["../escape.bin", "/etc/passwd", "unexpected.bin"])
def test_unexpected_or_hostile_names_are_refused(receiver, tmp_path, hostile):
    operation = make_operation(make_modem(ip_address="127.0.0.1"))
    expect(operation)

    with pytest.raises(tftpy.TftpException):
        upload(receiver, hostile, b"PNN\x04" + b"\0" * 600, tmp_path)

    assert not list(receiver.spool_dir.glob("*.bin"))
    assert not (tmp_path / "escape.bin").exists()


def test_uploads_for_a_stopped_operation_are_refused(receiver, tmp_path):
    operation = make_operation(make_modem(ip_address="127.0.0.1"))
    capture, _ = expect(operation)
    services.stop_operation(operation)

    with pytest.raises(tftpy.TftpException):
        upload(receiver, capture.file_name, b"PNN\x04" + b"\0" * 600, tmp_path)
    mib_name = default_file_name(PnmTest.RXMER, operation.modem.mac_address, 1_700_000_001)
    with pytest.raises(tftpy.TftpException):
        upload(receiver, mib_name, b"PNN\x04" + b"\0" * 600, tmp_path)

    capture.refresh_from_db()
    assert capture.state == CaptureState.CANCELLED


def test_a_file_whose_staging_could_not_be_queued_is_kept_for_the_next_try(tmp_path, monkeypatch):
    """The broker went away between marking the capture uploaded and queueing its staging:
    the receiver's next try must queue it, not delete the file as one nobody wants."""
    queued: list[list[int]] = []

    def broker_away_once(capture_pks: list[int]) -> None:
        if not queued:
            queued.append([])
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        queued.append(capture_pks)

    monkeypatch.setattr("captures.tasks.stage_captures.delay", broker_away_once)
    operation = make_operation(make_modem(ip_address="127.0.0.1"))
    capture, _ = expect(operation)
    spooled = tmp_path / capture.file_name
    spooled.write_bytes(b"PNN")
    item = Item(
        "tftp", capture.file_name, path=str(spooled), meta={"context": {"capture": capture.pk}}
    )

    with pytest.raises(OperationalError):
        receiving.forward(item)
    receiving.forward(item)  # the ingester's retry

    assert queued == [[], [capture.pk]]
    assert spooled.exists()
    capture.refresh_from_db()
    assert (capture.state, capture.spool_path) == (CaptureState.UPLOADED, str(spooled))
    # Another file under the same capture is still refused.
    other = Item("tftp", "x", path=str(tmp_path / "other.bin"), meta=item.meta)
    (tmp_path / "other.bin").write_bytes(b"PNN")
    receiving.forward(other)
    assert not (tmp_path / "other.bin").exists()
    assert queued == [[], [capture.pk]]


def test_files_that_arrived_together_are_marked_and_queued_as_one_batch(tmp_path, monkeypatch):
    queued: list[list[int]] = []
    monkeypatch.setattr("captures.tasks.stage_captures.delay", queued.append)
    operation = make_operation(make_modem(ip_address="127.0.0.1"))
    captures = [expect(operation, tick)[0] for tick in (1, 2, 3)]
    cancelled = captures[1]
    type(cancelled).objects.filter(pk=cancelled.pk).update(state=CaptureState.CANCELLED)
    items = []
    for capture in reversed(captures):
        spooled = tmp_path / capture.file_name
        spooled.write_bytes(b"PNN")
        meta = {"context": {"capture": capture.pk}}
        items.append(Item("tftp", capture.file_name, path=str(spooled), meta=meta))

    receiving.forward_together(items)

    wanted = [captures[0].pk, captures[2].pk]
    assert queued == [wanted]
    for capture in captures:
        capture.refresh_from_db()
    assert [capture.state for capture in captures] == [
        CaptureState.UPLOADED,
        CaptureState.CANCELLED,
        CaptureState.UPLOADED,
    ]
    assert captures[0].spool_path == str(tmp_path / captures[0].file_name)
    assert [(tmp_path / capture.file_name).exists() for capture in captures] == [True, False, True]
