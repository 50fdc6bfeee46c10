"""The TFTP receiver over real UDP on loopback: what it accepts, refuses, and where bytes land."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tftpy
from tftpy.TftpShared import TftpException

from core.ingester import Item
from devices.links.pnm import PnmTest, default_file_name
from devices.links.tftp import (
    Expectation,
    InMemoryExpectationStore,
    Refused,
    TftpReceiver,
    check_name,
    lookup_key,
)
from simulators.modem import send_truncated
from tests.helpers import wait_until

MAC = "02005e0000aa"
MAX_BYTES = 8192


class Receiver:
    """A running receiver plus what it emitted; ``upload`` is a real tftpy client."""

    def __init__(self, spool: Path, max_bytes: int = MAX_BYTES) -> None:
        self.items: list[Item] = []
        self.store = InMemoryExpectationStore()
        self.spool = spool
        self.rx = TftpReceiver(
            self.items.append,
            self.store,
            spool,
            host="127.0.0.1",
            port=0,
            max_bytes=max_bytes,
            transfer_timeout_s=0.3,
            retries=2,
            heartbeat_interval_s=60,
        )
        self.thread = threading.Thread(target=self.rx.run, name="test-tftp")
        self.thread.start()
        self.port = self.rx.bound_port

    def expect(self, name: str, peer: str = "127.0.0.1", **options: Any) -> Expectation:
        expectation = Expectation(name, peer, **options)
        self.store.expect(expectation)
        return expectation

    def upload(self, name: str, data: bytes, local_ip: str = "127.0.0.1") -> None:
        source = self.spool.parent / f"source-{time.monotonic_ns()}"
        source.write_bytes(data)
        try:
            client = tftpy.TftpClient("127.0.0.1", self.port, localip=local_ip)
            client.upload(name, str(source), timeout=1, retries=1)
        finally:
            source.unlink()

    def stop(self) -> None:
        self.rx.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver(tmp_path / "spool")
    yield running
    running.stop()


def spooled(item: Item) -> Path:
    """The file an emitted upload was stored in (every upload here is spooled)."""
    assert item.path is not None
    return Path(item.path)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_complete_upload_is_emitted_with_its_sha256(receiver: Receiver) -> None:
    data = os.urandom(3000)  # 6 blocks, the last one short
    expectation = receiver.expect("capture_1.bin", context={"operation_id": "ab" * 8})

    receiver.upload("capture_1.bin", data)

    (item,) = wait_until(lambda: receiver.items)
    assert item.source == "tftp"
    assert item.key == "capture_1.bin"
    assert spooled(item) == receiver.spool / "capture_1.bin"
    assert spooled(item).read_bytes() == data
    assert item.meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert item.meta["size"] == len(data)
    assert item.meta["peer"] == "127.0.0.1"
    assert item.meta["context"] == {"operation_id": "ab" * 8}
    assert receiver.store.done == [expectation]
    assert files_under(receiver.spool) == {"capture_1.bin"}  # no temp file left behind


def test_upload_of_exactly_whole_blocks_completes(receiver: Receiver) -> None:
    data = os.urandom(1024)  # ends with an empty DATA block
    receiver.expect("whole.bin")
    receiver.upload("whole.bin", data)
    (item,) = wait_until(lambda: receiver.items)
    assert spooled(item).read_bytes() == data


def test_mib_default_name_from_the_expected_modem_is_accepted(receiver: Receiver) -> None:
    receiver.expect("wanted.bin", mac=MAC, test=PnmTest.RXMER.value)
    default = f"PNMDsMer_{MAC.upper()}_1764820677"  # MAC case is the modem's choice

    receiver.upload(default, b"PNN\x04" + b"\0" * 100)

    (item,) = wait_until(lambda: receiver.items)
    assert item.key == "wanted.bin"  # stored under the name we expected
    assert spooled(item).name == "wanted.bin"
    assert item.meta["file_name"] == "wanted.bin"
    assert item.meta["received_name"] == default


def test_one_default_name_for_two_captures_of_a_modem_stores_both(receiver: Receiver) -> None:
    """MIB default names carry only the MAC and a second: two channels finishing within one
    second upload under the same name. Each goes to its own expected file."""
    first = receiver.expect("channel_193.bin", mac=MAC, test=PnmTest.RXMER.value)
    second = receiver.expect("channel_194.bin", mac=MAC, test=PnmTest.RXMER.value)
    default = f"PNMDsMer_{MAC}_1764820677"

    receiver.upload(default, b"PNN\x04" + b"\x01" * 100)
    wait_until(lambda: len(receiver.items) == 1)
    receiver.upload(default, b"PNN\x04" + b"\x02" * 100)
    items = wait_until(lambda: receiver.items if len(receiver.items) == 2 else None)

    assert [item.key for item in items] == ["channel_193.bin", "channel_194.bin"]
    assert [spooled(item).read_bytes()[4] for item in items] == [1, 2]
    assert receiver.store.done == [first, second]
    with pytest.raises(tftpy.TftpException):  # nothing waits for a third: refused
        receiver.upload(default, b"PNN\x04" + b"\x03" * 100)
    assert receiver.rx.refusals["already received"] == 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a/../escaped.bin", "path traversal"),
        ("/etc/escaped.bin", "absolute path"),
        ("sub/escaped.bin", "path in name"),
        ("C:escaped.bin", "absolute path"),
        ("escaped bin", "illegal characters in name"),
    ],
)
def test_paths_are_refused_with_an_error_and_a_log_line(
    receiver: Receiver, caplog: pytest.LogCaptureFixture, name: str, reason: str
) -> None:
    receiver.expect(name)  # even an "expected" path is refused

    with caplog.at_level(logging.WARNING), pytest.raises(TftpException):
        receiver.upload(name, b"x" * 10)

    assert receiver.rx.refusals[reason] == 1
    assert any(reason in record.getMessage() for record in caplog.records)
    assert files_under(receiver.spool.parent) == set()  # nothing anywhere, spool included


def test_leading_traversal_is_refused_by_tftpy_itself(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(TftpException):
        receiver.upload("../escaped.bin", b"x" * 10)
    assert any("not within the server root" in r.getMessage() for r in caplog.records)
    assert files_under(receiver.spool.parent) == set()


def test_unknown_peer_is_refused(receiver: Receiver) -> None:
    receiver.expect("mine.bin", peer="127.0.0.1")
    with pytest.raises(TftpException):
        receiver.upload("mine.bin", b"x" * 10, local_ip="127.0.0.2")
    assert receiver.rx.refusals["not expected from this peer"] == 1
    assert receiver.rx.snapshot()["refused"] == {"not expected from this peer": 1}
    assert receiver.items == []


def test_unexpected_name_is_refused(receiver: Receiver) -> None:
    receiver.expect("mine.bin")
    with pytest.raises(TftpException):
        receiver.upload("other.bin", b"x" * 10)
    assert receiver.rx.refusals["not expected from this peer"] == 1
    assert files_under(receiver.spool) == set()


def test_default_name_of_another_modem_is_refused(receiver: Receiver) -> None:
    receiver.expect("wanted.bin", mac=MAC, test=PnmTest.RXMER.value)
    with pytest.raises(TftpException):
        receiver.upload(default_file_name(PnmTest.RXMER, "02005e0000bb", 1), b"x")
    with pytest.raises(TftpException):  # same modem, other test
        receiver.upload(default_file_name(PnmTest.CHANNEL_ESTIMATION, MAC, 1), b"x")
    assert receiver.items == []


def test_expired_expectation_is_refused(receiver: Receiver) -> None:
    receiver.expect("late.bin", expires_at=time.time() - 1)
    with pytest.raises(TftpException):
        receiver.upload("late.bin", b"x")
    assert receiver.items == []


def test_oversize_upload_is_aborted_mid_transfer(receiver: Receiver) -> None:
    expectation = receiver.expect("huge.bin")
    with pytest.raises(TftpException):
        receiver.upload("huge.bin", os.urandom(MAX_BYTES * 3))

    failures = wait_until(lambda: receiver.store.failures)
    assert failures == [(expectation, f"larger than {MAX_BYTES} bytes")]
    assert receiver.items == []
    assert files_under(receiver.spool) == set()


def test_second_upload_of_a_finished_file_is_refused(receiver: Receiver) -> None:
    receiver.expect("once.bin")
    receiver.expect("once.bin")  # even if expected twice
    receiver.upload("once.bin", b"first")
    wait_until(lambda: receiver.items)

    with pytest.raises(TftpException):
        receiver.upload("once.bin", b"second")

    assert receiver.rx.refusals["already received"] == 1
    assert (receiver.spool / "once.bin").read_bytes() == b"first"
    assert len(receiver.items) == 1


def test_upload_aborted_by_the_sender_is_discarded_and_failed(receiver: Receiver) -> None:
    expectation = receiver.expect("cut.bin")
    sent = send_truncated("127.0.0.1", receiver.port, "cut.bin", os.urandom(4000), "127.0.0.1", 1)
    assert sent > 0

    failures = wait_until(lambda: receiver.store.failures)
    assert failures[0][0] == expectation
    assert receiver.items == []
    assert files_under(receiver.spool) == set()


def test_upload_that_goes_silent_is_discarded_after_the_timeout(receiver: Receiver) -> None:
    expectation = receiver.expect("silent.bin")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"\0\x02silent.bin\0octet\0", ("127.0.0.1", receiver.port))
        _, server = sock.recvfrom(1024)
        sock.sendto(struct.pack("!HH", 3, 1) + b"y" * 512, server)  # one block, then nothing
        sock.recvfrom(1024)

        failures = wait_until(lambda: receiver.store.failures, timeout=5)

    assert failures == [(expectation, "transfer aborted or timed out")]
    assert files_under(receiver.spool) == set()


def test_reads_are_refused(receiver: Receiver, tmp_path: Path) -> None:
    receiver.expect("secret.bin")
    receiver.upload("secret.bin", b"data")
    wait_until(lambda: receiver.items)
    client = tftpy.TftpClient("127.0.0.1", receiver.port)
    with pytest.raises(TftpException):
        client.download("secret.bin", str(tmp_path / "out"), timeout=1, retries=1)


def test_stop_returns_promptly(tmp_path: Path) -> None:
    running = Receiver(tmp_path / "spool")
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 3


def test_receiver_is_ipv4_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="IPv4"):
        TftpReceiver(lambda item: None, InMemoryExpectationStore(), tmp_path, host="::1")


@pytest.mark.parametrize("name", ["", "..", ".hidden", "a\0b", "x" * 300, "dir\\file", "ok/"])
def test_check_name_refuses_anything_but_a_plain_name(name: str) -> None:
    with pytest.raises(Refused):
        check_name(name)


def test_lookup_keys_cover_the_requested_and_the_default_name() -> None:
    expectation = Expectation("x.bin", "10.0.0.7", mac=MAC, test=PnmTest.RXMER.value)
    assert lookup_key("x.bin", "10.0.0.7") in expectation.lookup_keys()
    default = default_file_name(PnmTest.RXMER, MAC, 5)
    assert lookup_key(default, "10.0.0.7") in expectation.lookup_keys()
    assert lookup_key(default, "10.0.0.8") not in expectation.lookup_keys()
    assert Expectation.from_dict(expectation.to_dict()) == expectation
