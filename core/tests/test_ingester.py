"""The ingester base: forwarding, metrics, dump and replay, failure parking, SIGTERM."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from core.ingester import FORWARD_ATTEMPTS, MAX_TOGETHER, Ingester, Item, read_dump, replay


class ListSource(Ingester):
    """Emits a fixed list of items, then waits to be stopped."""

    def __init__(self, items, forward, **kwargs):
        super().__init__("test-source", forward, **kwargs)
        self.items = items

    def serve(self) -> None:
        for item in self.items:
            self.emit(item)
        self.stopping.wait(5)


def make_items(count: int) -> list[Item]:
    return [Item("test-source", f"k{i}", payload=f"line {i}\n".encode()) for i in range(count)]


def run_until_forwarded(source: Ingester, received: list, expected: int) -> None:
    thread = threading.Thread(target=source.run)
    thread.start()
    deadline = threading.Event()
    for _ in range(200):
        if len(received) >= expected:
            break
        deadline.wait(0.02)
    source.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_forwards_every_item_in_order_and_counts_them():
    received: list[Item] = []
    items = make_items(50)
    source = ListSource(items, received.append)
    run_until_forwarded(source, received, 50)
    assert [item.key for item in received] == [item.key for item in items]
    snapshot = source.snapshot()
    assert snapshot["items"] == 50
    assert snapshot["bytes"] == sum(len(item.payload) for item in items)
    assert snapshot["errors"] == 0
    assert all(item.received_at > 0 for item in received)


def test_dump_replays_to_the_same_items(tmp_path):
    received: list[Item] = []
    spooled = tmp_path / "capture.bin"
    spooled.write_bytes(b"\x00PNN\x04binary")
    items = [*make_items(3), Item("test-source", "file", path=str(spooled), meta={"peer": "x"})]
    dump = tmp_path / "dump" / "source.jsonl"
    run_until_forwarded(ListSource(items, received.append, dump_path=dump), received, 4)

    replayed: list[Item] = []
    assert replay(dump, replayed.append) == 4
    assert [item.read() for item in replayed] == [item.read() for item in items]
    assert replayed[3].meta == {"peer": "x"}
    assert [item.received_at for item in replayed] == [item.received_at for item in received]
    assert len(list(read_dump(dump))) == 4


def test_forward_failures_are_retried_then_parked_for_replay(tmp_path, monkeypatch):
    monkeypatch.setattr("core.ingester.FORWARD_BACKOFF_S", 0.001)
    attempts: list[str] = []

    def flaky(item: Item) -> None:
        attempts.append(item.key)
        if item.key == "k1" or len(attempts) == 1:
            raise ConnectionError("broker down")

    dump = tmp_path / "source.jsonl"
    source = ListSource(make_items(3), flaky, dump_path=dump)
    run_until_forwarded(source, attempts, 1 + FORWARD_ATTEMPTS + 1 + 1)
    # k0 failed once then went through; k1 failed every attempt; k2 went through.
    assert attempts.count("k0") == 2
    assert attempts.count("k1") == FORWARD_ATTEMPTS == 10
    assert source.snapshot()["lost"] == 1
    parked = list(read_dump(tmp_path / "failed-test-source.jsonl"))
    assert [item.key for item in parked] == ["k1"]


def test_an_item_that_cannot_be_parked_is_lost_but_forwarding_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr("core.ingester.FORWARD_BACKOFF_S", 0.001)
    (tmp_path / "failed-test-source.jsonl").mkdir()  # parking there fails (IsADirectoryError)
    forwarded: list[str] = []

    def failing_k0(item: Item) -> None:
        if item.key == "k0":
            raise ConnectionError("database down")
        forwarded.append(item.key)

    source = ListSource(make_items(2), failing_k0, dump_path=tmp_path / "source.jsonl")
    run_until_forwarded(source, forwarded, 1)
    assert forwarded == ["k1"]
    assert source.snapshot()["lost"] == 1


class Queued(ListSource):
    """Every item is queued before forwarding starts: they all wait together."""

    def __init__(self, items, forward, **kwargs):
        super().__init__([], forward, **kwargs)
        for item in items:
            self.emit(item)


def test_items_waiting_together_are_forwarded_in_one_call():
    sizes: list[int] = []
    forwarded: list[str] = []

    def together(items: list[Item]) -> None:
        sizes.append(len(items))
        forwarded.extend(item.key for item in items)

    source = Queued(make_items(100), lambda item: together([item]), forward_together=together)
    run_until_forwarded(source, forwarded, 100)

    assert sizes == [MAX_TOGETHER, 100 - MAX_TOGETHER]
    assert forwarded == [f"k{i}" for i in range(100)]
    assert source.snapshot()["errors"] == 0


class Trickle(ListSource):
    """Emits its items ``gap_s`` apart, as uploads completing one after another."""

    def __init__(self, items, forward, gap_s: float, **kwargs):
        super().__init__(items, forward, **kwargs)
        self.gap_s = gap_s

    def serve(self) -> None:
        for item in self.items:
            self.emit(item)
            self.stopping.wait(self.gap_s)
        self.stopping.wait(5)


@pytest.mark.parametrize(("linger_s", "expected_sizes"), [(0.0, [1, 1, 1, 1]), (2.0, [4])])
def test_items_arriving_within_the_linger_join_one_call(linger_s, expected_sizes):
    sizes: list[int] = []
    forwarded: list[str] = []

    def together(items: list[Item]) -> None:
        sizes.append(len(items))
        forwarded.extend(item.key for item in items)

    source = Trickle(
        make_items(4),
        lambda item: together([item]),
        gap_s=0.05,
        forward_together=together,
        linger_s=linger_s,
    )
    run_until_forwarded(source, forwarded, 4)

    assert sizes == expected_sizes
    assert forwarded == ["k0", "k1", "k2", "k3"]


def test_a_linger_does_not_hold_items_past_a_stop():
    forwarded: list[str] = []
    source = ListSource(
        make_items(1),
        lambda item: forwarded.append(item.key),
        forward_together=lambda items: forwarded.extend(item.key for item in items),
        linger_s=30.0,
    )
    thread = threading.Thread(target=source.run)
    thread.start()
    threading.Event().wait(0.2)  # the forwarder holds k0 and lingers
    source.stop()
    thread.join(5)  # not the 30 s linger
    assert not thread.is_alive()
    assert forwarded == ["k0"]


def test_a_failed_call_for_many_goes_one_at_a_time_and_parks_only_the_bad_item(
    tmp_path, monkeypatch
):
    monkeypatch.setattr("core.ingester.FORWARD_BACKOFF_S", 0.001)
    together: list[int] = []
    alone: list[str] = []

    def refuse_k1(items: list[Item]) -> None:
        together.append(len(items))
        if any(item.key == "k1" for item in items):
            raise ValueError("k1 is malformed")

    def forward_one(item: Item) -> None:
        if item.key == "k1":
            raise ValueError("k1 is malformed")
        alone.append(item.key)

    source = Queued(
        make_items(3), forward_one, forward_together=refuse_k1, dump_path=tmp_path / "s.jsonl"
    )
    run_until_forwarded(source, alone, 2)

    assert together == [3]
    assert alone == ["k0", "k2"]
    parked = list(read_dump(tmp_path / "failed-test-source.jsonl"))
    assert [item.key for item in parked] == ["k1"]
    assert source.snapshot()["lost"] == 1


def test_heartbeat_reports_metrics():
    beats: list[tuple[str, dict]] = []
    received: list[Item] = []
    source = ListSource(
        make_items(2),
        received.append,
        heartbeat=lambda n, s: beats.append((n, s)),
        heartbeat_interval_s=0.05,
    )
    run_until_forwarded(source, received, 2)
    assert beats, "no heartbeat was sent"
    name, snapshot = beats[-1]
    assert name == "test-source"
    assert snapshot["items"] == 2


def test_sigterm_stops_serving_cleanly():
    received: list[Item] = []
    source = ListSource(make_items(1), received.append)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        source.install_signal_handlers()
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        source.run()  # returns only once SIGTERM set the stop flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert source.stopping.is_set()
    assert [item.key for item in received] == ["k0"]


@pytest.mark.django_db
def test_heartbeats_are_visible_until_they_expire():
    from core.heartbeats import live_ingesters, record_heartbeat

    record_heartbeat("tftp", {"name": "tftp", "items": 3})
    live = {entry["name"]: entry for entry in live_ingesters()}
    assert live["tftp"]["items"] == 3
    assert live["tftp"]["pid"] == os.getpid()


class FlushOnStop(Ingester):
    """Holds its items until asked to stop, like a batching listener."""

    def serve(self) -> None:
        self.stopping.wait(5)
        for index in range(20):
            self.emit(Item(self.name, f"late{index}", payload=b"x"))


def test_items_emitted_while_shutting_down_are_still_forwarded():
    received: list[Item] = []
    source = FlushOnStop("flush-on-stop", received.append)
    thread = threading.Thread(target=source.run)
    thread.start()
    source.stop()
    thread.join(10)
    assert [item.key for item in received] == [f"late{i}" for i in range(20)]
