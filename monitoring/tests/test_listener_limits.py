"""The stream listener's defences: token, allow-list, connection cap, idle timeout, bad
lines, long lines, byte budget, and both attacks of issue 11 against a real listener process."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from config.env import Env
from core.ingester import Item
from monitoring.listener import MAX_LINE_BYTES, LineListener, token_in_first_line
from monitoring.models import Instrument, Sample
from monitoring.tests.helpers import ListenerProcess
from tests.helpers import wait_until

TOKEN = "s3cret-Token_0123456789"


class RecordingListener(LineListener):
    """A listener that forwards into ``items``, for the test to read."""

    items: list[Item]


@pytest.fixture
def start():
    """Start in-process listeners (forwarding into a list); stopped at the end."""
    started = []

    def start(**options) -> RecordingListener:
        items: list[Item] = []
        listener = RecordingListener("limits-test", items.append, port=0, batch_s=0.05, **options)
        listener.items = items
        thread = threading.Thread(target=listener.run)
        thread.start()
        assert listener.ready.wait(10)
        started.append((listener, thread))
        return listener

    yield start
    for listener, thread in started:
        listener.stop()
        thread.join(15)
        assert not thread.is_alive()


def received(listener: RecordingListener) -> list[bytes]:
    return b"".join(item.payload for item in listener.items).splitlines()


def source(listener: LineListener) -> dict:
    return listener.snapshot()["sources"].get("127.0.0.1", {})


def connect(listener: LineListener) -> socket.socket:
    return socket.create_connection(("127.0.0.1", listener.port), timeout=10)


def closed_by_listener(sock: socket.socket) -> bool:
    """True once the listener has closed the connection (EOF or reset), within 10 s."""
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"# fieldrelay_token=" + TOKEN.encode(), (True, False)),
        (b"#fieldrelay_token=" + TOKEN.encode() + b" \r", (True, False)),
        (b"bpm,fieldrelay_token=" + TOKEN.encode() + b",instrument=A x=1 5", (True, True)),
        (b"bpm,instrument=A,fieldrelay_token=" + TOKEN.encode() + b" x=1", (True, True)),
        (b"# fieldrelay_token=wrong-token-0123456789", (False, False)),
        (b"bpm,fieldrelay_token=" + TOKEN.encode() + b"X x=1", (False, True)),
        (b"bpm,instrument=A x=1,fieldrelay_token=" + TOKEN.encode(), (False, False)),
        (b"bpm,instrument=A x=1", (False, False)),
    ],
)
def test_token_in_first_line(line, expected):
    assert token_in_first_line(line, TOKEN.encode()) == expected


def test_token_as_comment_or_tag_is_accepted_and_never_forwarded(start):
    listener = start(token=TOKEN)
    with connect(listener) as a, connect(listener) as b:
        a.sendall(f"# fieldrelay_token={TOKEN}\na x=1 1\n".encode())
        b.sendall(
            f"b,fieldrelay_token={TOKEN},instrument=B x=2 2\n"
            f"b,instrument=B,fieldrelay_token={TOKEN} x=3 3\nb,instrument=B x=4 4\n".encode()
        )
        wait_until(lambda: len(received(listener)) == 4)
    assert sorted(received(listener)) == [
        b"a x=1 1",
        b"b,instrument=B x=2 2",
        b"b,instrument=B x=3 3",
        b"b,instrument=B x=4 4",
    ]
    assert listener.snapshot()["refused"]["token"] == 0


def test_wrong_missing_or_late_token_is_refused_logged_and_counted(start, caplog):
    listener = start(token=TOKEN, idle_timeout_s=0.5)  # the token is due within 0.5 s
    wrong = "wrong-token-0123456789"
    with connect(listener) as bad, connect(listener) as plain, connect(listener) as silent:
        bad.sendall(f"# fieldrelay_token={wrong}\na x=1 1\n".encode())
        plain.sendall(b"a x=1 1\n")
        assert all(map(closed_by_listener, (bad, plain, silent)))
    wait_until(lambda: listener.snapshot()["refused"]["token"] == 3)
    assert source(listener)["refused"] == 3
    assert source(listener)["lines"] == 0
    assert "refused 127.0.0.1: no valid token in the first line" in caplog.text
    assert TOKEN not in caplog.text
    assert wrong not in caplog.text


def test_allow_list_refuses_other_networks(start):
    elsewhere = start(allow=["10.0.0.0/8", "192.0.2.7"])
    with connect(elsewhere) as sock:
        assert closed_by_listener(sock)
    wait_until(lambda: elsewhere.snapshot()["refused"]["network"] == 1)
    assert "127.0.0.1" not in elsewhere.snapshot()["sources"]

    here = start(allow=["127.0.0.0/8"])
    with connect(here) as sock:
        sock.sendall(b"a x=1 1\n")
    wait_until(lambda: received(here) == [b"a x=1 1"])
    assert here.snapshot()["refused"]["network"] == 0


def test_connections_beyond_the_cap_are_refused(start):
    listener = start(max_connections=2)
    first, second = connect(listener), connect(listener)
    wait_until(lambda: listener.snapshot()["open_connections"] == 2)
    with connect(listener) as third:
        assert closed_by_listener(third)
    assert listener.snapshot()["refused"]["capacity"] == 1
    first.close()
    wait_until(lambda: listener.snapshot()["open_connections"] == 1)
    with connect(listener) as fourth:
        fourth.sendall(b"d x=4 4\n")
    second.close()
    wait_until(lambda: received(listener) == [b"d x=4 4"])
    assert listener.snapshot()["refused"]["capacity"] == 1


def test_idle_connections_are_closed_keeping_their_last_line(start):
    listener = start(idle_timeout_s=0.5)
    with connect(listener) as sock:
        sock.sendall(b"a x=1 1\nb x=2 2")  # the last line has no newline yet
        assert closed_by_listener(sock)
    wait_until(lambda: received(listener) == [b"a x=1 1", b"b x=2 2"])
    assert listener.snapshot()["closed"]["idle"] == 1


def test_malformed_lines_are_dropped_counted_and_end_the_connection(start):
    listener = start(max_bad_lines=3)
    with connect(listener) as sock:
        sock.sendall(b"a x=1 1\n\x00\x01\x02 x=\xff\nnospace\n\n# a comment\nb x=2 2\n")
        wait_until(lambda: source(listener).get("lines") == 4)
        assert source(listener)["bad_lines"] == 2
        sock.sendall(b"c x=3 3\nno fields\n")  # the third bad line is still allowed
        wait_until(lambda: source(listener)["lines"] == 5)
        sock.sendall(b"\x7f\x00\n")
        assert closed_by_listener(sock)
    kept = [b"a x=1 1", b"", b"# a comment", b"b x=2 2", b"c x=3 3"]
    wait_until(lambda: received(listener) == kept)
    assert listener.snapshot()["closed"]["bad_lines"] == 1
    assert source(listener)["bad_lines"] == 4


def test_a_line_over_the_limit_ends_the_connection(start):
    listener = start()
    with connect(listener) as sock:
        with contextlib.suppress(OSError):  # the listener may have closed it already
            sock.sendall(b"a x=1 1\n" + b"y" * (MAX_LINE_BYTES + 1))
        assert closed_by_listener(sock)
    wait_until(lambda: received(listener) == [b"a x=1 1"])
    assert listener.snapshot()["closed"]["long_line"] == 1


def test_a_connection_over_its_byte_budget_is_paused_not_dropped(start):
    listener = start(max_bytes_per_s=200_000)
    lines = b"".join(b"a x=%d %d\n" % (k, k) for k in range(50_000))  # ~790 kB
    with connect(listener) as sock:
        sock.sendall(lines)
    wait_until(lambda: len(received(listener)) == 50_000)
    assert b"\n".join(received(listener)) + b"\n" == lines
    assert listener.snapshot()["throttled"] >= 2


def test_the_command_will_not_listen_on_a_public_address_without_access_control(settings):
    settings.MONITORING_LISTENER_TOKEN = ""
    settings.MONITORING_LISTENER_ALLOW = []
    with pytest.raises(CommandError, match="MONITORING_LISTENER_TOKEN or MONITORING_LISTENER_A"):
        call_command("ingest_listener", "--host=0.0.0.0", "--port=0")


def test_settings_readers_of_the_listener():
    env = Env({"ALLOW": "10.1.2.0/24, 192.0.2.7,10.9.9.9/8", "TOKEN": TOKEN})
    assert env.networks("ALLOW") == ["10.1.2.0/24", "192.0.2.7/32", "10.0.0.0/8"]
    assert env.token("TOKEN") == TOKEN
    assert Env({}).token("TOKEN") == ""
    with pytest.raises(ImproperlyConfigured, match="ALLOW must list networks"):
        Env({"ALLOW": "10.0.0.0/8,intranet"}).networks("ALLOW")
    for weak in ("short", "has space and is long enough"):
        with pytest.raises(ImproperlyConfigured, match="TOKEN must be 16 to 256") as refused:
            Env({"TOKEN": weak}).token("TOKEN")
        assert weak not in str(refused.value)


# --- the two attacks of issue 11, against a real listener process ---------------------------
T_NS = time.time_ns() - 60 * 10**9


def _line(name: str, k: int) -> bytes:
    """Sample k of an instrument, 1 ms after sample k - 1 (stored times are in µs)."""
    t_ns = T_NS + k * 10**6
    return f"bpm,instrument={name} top_in={k},bot_in=1,bot_out=2,top_out=3 {t_ns}\n".encode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_idle_connections_past_the_descriptor_limit_do_not_stop_the_listener():
    """260 idle connections against a limit of 200 open files (the cap set above it): the
    listener backs off at EMFILE, its idle timeout frees descriptors, and a client that
    comes afterwards still gets its data stored."""
    Instrument.objects.create(name="FD1")
    listener = ListenerProcess(
        env={
            "MONITORING_LISTENER_MAX_CONNECTIONS": "1000",
            "MONITORING_LISTENER_IDLE_TIMEOUT_S": "2",
        },
        max_files=200,
    )
    idle: list[socket.socket] = []
    try:
        wait_until(lambda: listener.port, timeout=60)
        address = ("127.0.0.1", listener.port)
        with socket.create_connection(address, timeout=10) as first:
            first.sendall(_line("FD1", 0))
        wait_until(lambda: Sample.objects.count() == 1, timeout=30)
        for _ in range(260):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)
            idle.append(sock)
        wait_until(lambda: "accept() failed" in listener.text(), timeout=30)
        assert listener.proc.poll() is None
        with socket.create_connection(address, timeout=60) as late:
            late.sendall(_line("FD1", 1))
        wait_until(lambda: Sample.objects.count() == 2, timeout=90)
        assert listener.proc.poll() is None
    finally:
        for sock in idle:
            sock.close()
        snapshot = listener.stop()
    output = listener.text()
    assert "Too many open files" in output, output[-3000:]
    assert snapshot["accept_backoffs"] >= 1
    assert snapshot["closed"]["idle"] >= 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_garbage_flood_is_cut_off_while_another_client_streams():
    """32 MB of random bytes on one connection while another streams 100 lines: the flood
    is disconnected after its first reads, next to nothing of it is forwarded, and every
    good line is stored."""
    Instrument.objects.create(name="GF1")
    listener = ListenerProcess()
    flood: dict = {}
    good_started = threading.Event()

    def stream_good() -> None:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
            for k in range(100):
                sock.sendall(_line("GF1", k))
                good_started.set()
                time.sleep(0.03)

    def send_garbage() -> None:
        garbage, sent = os.urandom(32 * 1024 * 1024), 0
        try:
            with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
                for offset in range(0, len(garbage), 1024 * 1024):
                    sock.sendall(garbage[offset : offset + 1024 * 1024])
                    sent = offset + 1024 * 1024
        except OSError as error:
            flood["error"] = error
        flood["sent"] = sent

    try:
        wait_until(lambda: listener.port, timeout=60)
        good = threading.Thread(target=stream_good)
        good.start()
        assert good_started.wait(30)
        flooder = threading.Thread(target=send_garbage)
        flooder.start()
        flooder.join(60)
        good.join(60)
        wait_until(lambda: Sample.objects.count() == 100, timeout=60)
    finally:
        snapshot = listener.stop()
    assert isinstance(flood.get("error"), ConnectionError), flood
    assert flood["sent"] < 32 * 1024 * 1024
    assert snapshot["closed"]["bad_lines"] == 1
    assert snapshot["sources"]["127.0.0.1"]["bad_lines"] > 100
    assert snapshot["bytes"] < 64 * 1024  # next to nothing of the flood was forwarded
    top_in = list(Sample.objects.order_by("ts").values_list("c0", flat=True))
    assert top_in == [float(k) for k in range(100)]
