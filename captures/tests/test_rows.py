"""``core.rows``: each row gets its own values, NULLs included, in one statement; counters
move on the rows ``where`` picks; on PostgreSQL and on the demo's SQLite."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from captures.models import Capture, ChannelTally, Operation, OperationState
from core.rows import (
    Change,
    add_to,
    add_together,
    insert_rows,
    insert_rows_locking,
    load_all,
    load_all_with,
    load_one,
    load_one_with,
    row_keys,
    update_returning,
    update_rows,
)
from tests.factories import make_modem, make_operation, rxmer_capture
from tests.helpers import embedded_manage

MER = "DS_OFDM_RXMER_PER_SUBCAR"
FIELDS = ["last_tick", "last_tick_at", "next_tick_at", "time_remaining"]


@pytest.mark.django_db
def test_each_row_gets_its_own_values_in_one_statement():
    first, second, untouched = (make_operation(make_modem(index)) for index in range(1, 4))
    now = timezone.now()
    first.last_tick, first.last_tick_at, first.next_tick_at = 3, now, now + timedelta(seconds=5)
    first.time_remaining = 41
    second.last_tick, second.last_tick_at, second.next_tick_at = 7, now, None
    second.time_remaining = 0
    before = Operation.objects.values_list(*FIELDS).get(pk=untouched.pk)

    with CaptureQueriesContext(connection) as queries:
        assert update_rows([first, second], FIELDS) == 2

    assert len(queries) == 1
    rows = {
        pk: tuple(values)
        for pk, *values in Operation.objects.values_list("pk", *FIELDS).filter(
            pk__in=[first.pk, second.pk]
        )
    }
    assert rows == {
        first.pk: (3, now, now + timedelta(seconds=5), 41),
        second.pk: (7, now, None, 0),
    }
    assert Operation.objects.values_list(*FIELDS).get(pk=untouched.pk) == before


def test_no_rows_is_no_statement():
    assert update_rows([], FIELDS) == 0


@pytest.mark.django_db
def test_counters_move_only_on_the_rows_where_picks():
    first, second, stopped = (make_operation(make_modem(index)) for index in range(1, 4))
    Operation.objects.filter(pk=stopped.pk).update(state=OperationState.STOPPED)
    now = timezone.now()
    running = {"id": [first.pk, second.pk, stopped.pk], "state": OperationState.RUNNING}

    with CaptureQueriesContext(connection) as queries:
        counted = add_to(Operation, running, {"triggered": 2, "missed": 1}, {"updated": now})

    assert counted == 2
    assert len(queries) == 1
    rows = Operation.objects.order_by("pk").values_list("triggered", "missed", "updated")
    assert list(rows) == [(2, 1, now), (2, 1, now), (0, 0, stopped.updated)]
    tally = ChannelTally.objects.create(operation=first, test="T", channel_id=7, planned=3)
    where = {"operation_id": first.pk, "test": "T", "channel_id": [7, 8]}
    assert add_to(ChannelTally, where, {"collected": 1}) == 1
    tally.refresh_from_db()
    assert tally.collected == 1
    with CaptureQueriesContext(connection) as queries:
        assert add_to(ChannelTally, {"channel_id": []}, {"collected": 1}) == 0
    assert not queries


@pytest.mark.django_db
def test_one_row_loads_as_the_orm_loads_it():
    operation = make_operation(make_modem(1), channel_ids=[193, 194])
    Operation.objects.filter(pk=operation.pk).update(metadata={"channels": {"ds": [[3, 193]]}})
    expected = Operation.objects.get(pk=operation.pk)

    with CaptureQueriesContext(connection) as queries:
        loaded = load_one(Operation, {"id": [operation.pk, 0], "state": OperationState.RUNNING})

    assert len(queries) == 1
    assert loaded is not None
    assert {f.attname: getattr(loaded, f.attname) for f in Operation._meta.concrete_fields} == {
        f.attname: getattr(expected, f.attname) for f in Operation._meta.concrete_fields
    }
    assert loaded.metadata == {"channels": {"ds": [[3, 193]]}}  # JSON decoded
    assert loaded.channel_ids == [193, 194]
    assert load_one(Operation, {"id": operation.pk, "state": OperationState.STOPPED}) is None
    assert load_one(Operation, {"id": []}) is None


@pytest.mark.django_db
def test_a_row_and_its_foreign_row_load_in_one_query():
    operation = make_operation(make_modem(2), channel_ids=[193])
    other = make_operation(make_modem(3))
    expected = Operation.objects.select_related("modem").get(pk=operation.pk)

    with CaptureQueriesContext(connection) as queries:
        loaded = load_one_with(Operation, {"id": operation.pk, "state": "running"}, "modem")

    assert len(queries) == 1
    assert loaded is not None
    for row, orm_row in ((loaded, expected), (loaded.modem, expected.modem)):
        fields = type(row)._meta.concrete_fields
        assert {f.attname: getattr(row, f.attname) for f in fields} == {
            f.attname: getattr(orm_row, f.attname) for f in fields
        }
    assert loaded.modem.pk == operation.modem_id != other.modem_id
    with CaptureQueriesContext(connection) as queries:
        both = load_all_with(Operation, {"id": [other.pk, operation.pk, 0]}, "modem")
    assert len(queries) == 1
    assert [(row.pk, row.modem.pk) for row in both] == [
        (operation.pk, operation.modem_id),
        (other.pk, other.modem_id),
    ]
    assert load_one_with(Operation, {"id": operation.pk, "state": "stopped"}, "modem") is None
    with pytest.raises(TypeError):
        load_one_with(Operation, {"id": operation.pk}, "metadata")


@pytest.mark.django_db
def test_many_rows_load_as_the_orm_loads_them():
    operations = [make_operation(make_modem(index)) for index in (1, 2)]
    capture = rxmer_capture(operations[1], 1, 193, "one.bin")
    assert capture is not None
    wanted = [operations[1].pk, 0, operations[0].pk]

    with CaptureQueriesContext(connection) as queries:
        loaded = load_all(Operation, {"id": wanted})

    assert len(queries) == 1
    expected = list(Operation.objects.filter(pk__in=wanted).order_by("pk"))
    assert [row.pk for row in loaded] == [row.pk for row in expected]
    for row, orm_row in zip(loaded, expected, strict=True):
        assert {f.attname: getattr(row, f.attname) for f in Operation._meta.concrete_fields} == {
            f.attname: getattr(orm_row, f.attname) for f in Operation._meta.concrete_fields
        }
        assert not row._state.adding
    [loaded_capture] = load_all(Capture, {"id": [capture.pk]})
    assert loaded_capture.triggered_at == Capture.objects.get(pk=capture.pk).triggered_at
    assert load_all(Operation, {"id": []}) == []


@pytest.mark.django_db
def test_new_rows_go_in_one_statement_and_get_their_keys():
    operation = make_operation(make_modem(1))
    rows = [
        ChannelTally(operation=operation, test=MER, channel_id=193, planned=4),
        ChannelTally(operation=operation, test="", channel_id=None, collected=2),
    ]

    with CaptureQueriesContext(connection) as queries:
        assert insert_rows(rows) == rows

    assert len(queries) == 1
    assert all(row.pk is not None and not row._state.adding for row in rows)
    stored = ChannelTally.objects.filter(pk__in=[row.pk for row in rows])
    assert {row.pk: (row.test, row.channel_id, row.planned, row.collected) for row in stored} == {
        rows[0].pk: (MER, 193, 4, 0),
        rows[1].pk: ("", None, 0, 2),
    }
    assert insert_rows([]) == []


@pytest.mark.django_db
def test_keys_are_read_and_locked_only_where_picked():
    running, stopped = (make_operation(make_modem(index)) for index in (1, 2))
    Operation.objects.filter(pk=stopped.pk).update(state=OperationState.STOPPED)
    picks = {"id": [running.pk, stopped.pk], "state": OperationState.RUNNING}

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert row_keys(Operation, picks, lock=True) == [running.pk]
    assert queries[0]["sql"].endswith("FOR UPDATE")

    with CaptureQueriesContext(connection) as queries:
        assert row_keys(Operation, {"id": [stopped.pk, running.pk]}) == [running.pk, stopped.pk]
    assert "FOR UPDATE" not in queries[0]["sql"]

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = load_one(Operation, picks, lock=True)
        assert locked is not None
        assert locked.pk == running.pk
        assert load_one(Operation, {"id": stopped.pk, "state": "running"}, lock=True) is None
    assert queries[0]["sql"].endswith("FOR UPDATE")


@pytest.mark.django_db
def test_none_picks_the_rows_without_a_value():
    operation = make_operation(make_modem(1))
    early, known = insert_rows(
        [
            ChannelTally(operation=operation, test="", channel_id=None, planned=2),
            ChannelTally(operation=operation, test=MER, channel_id=193, planned=5),
        ]
    )

    assert row_keys(ChannelTally, {"operation_id": operation.pk, "channel_id": None}) == [early.pk]
    assert [row.pk for row in load_all(ChannelTally, {"channel_id": 193})] == [known.pk]


@pytest.mark.django_db
def test_a_conditional_update_returns_the_rows_it_took():
    first, second, stopped = (make_operation(make_modem(index)) for index in range(1, 4))
    Operation.objects.filter(pk=stopped.pk).update(state=OperationState.STOPPED)
    running = {"id": [first.pk, second.pk, stopped.pk], "state": OperationState.RUNNING}

    with CaptureQueriesContext(connection) as queries:
        took = update_returning(Operation, running, {"last_tick": 9}, "id")

    assert len(queries) == 1
    assert sorted(took) == sorted([first.pk, second.pk])
    assert dict(Operation.objects.values_list("pk", "last_tick")) == {
        first.pk: 9,
        second.pk: 9,
        stopped.pk: 0,
    }
    assert update_returning(Operation, {"id": []}, {"last_tick": 1}, "id") == []


@pytest.mark.django_db
def test_changes_together_move_only_when_the_first_one_does():
    running, stopped = (make_operation(make_modem(index)) for index in (1, 2))
    Operation.objects.filter(pk=stopped.pk).update(state=OperationState.STOPPED)
    tallies = {
        operation.pk: ChannelTally.objects.create(
            operation=operation, test=MER, channel_id=193, planned=4
        )
        for operation in (running, stopped)
    }
    now = timezone.now()

    def count(operation: Operation) -> list[int]:
        return add_together(
            Change(
                Operation,
                {"id": operation.pk, "state": "running"},
                {"triggered": 2},
                {"updated": now},
            ),
            Change(
                ChannelTally, {"operation_id": operation.pk, "channel_id": [193]}, {"triggered": 2}
            ),
            Change(ChannelTally, {"operation_id": operation.pk, "channel_id": []}, {"missed": 1}),
        )

    with CaptureQueriesContext(connection) as queries:
        assert count(running) == [running.pk]
    assert len(queries) == 1  # no BEGIN, no COMMIT: one statement
    assert count(stopped) == []
    assert Operation.objects.get(pk=running.pk).triggered == 2
    assert Operation.objects.get(pk=running.pk).updated == now
    assert Operation.objects.get(pk=stopped.pk).triggered == 0
    assert ChannelTally.objects.get(pk=tallies[running.pk].pk).triggered == 2
    assert ChannelTally.objects.get(pk=tallies[stopped.pk].pk).triggered == 0  # held back
    assert add_together(Change(Operation, {"id": []}, {"missed": 1})) == []
    Operation.objects.filter(pk=running.pk).update(final_tick_done=True)
    with CaptureQueriesContext(connection) as queries:  # a flag, as the UPDATE left it
        flags = add_together(
            Change(Operation, {"id": running.pk}, {"collected": 1}),
            Change(ChannelTally, {"operation_id": running.pk}, {"collected": 1}),
            returning="final_tick_done",
        )
    assert (flags, len(queries)) == ([True], 1)


@pytest.mark.django_db
def test_rows_go_in_under_the_lock_only_while_its_row_is_there():
    running, stopped = (make_operation(make_modem(index)) for index in (1, 2))
    Operation.objects.filter(pk=stopped.pk).update(state=OperationState.STOPPED)
    now = timezone.now()

    def rows(operation: Operation, name: str) -> list[Capture]:
        return [
            Capture(
                operation=operation,
                tick=1,
                test=MER,
                channel_id=193,
                if_index=3,
                file_name=name,
                triggered_at=now,
                deadline=now + timedelta(seconds=9),
            ),
            Capture(
                operation=operation,
                tick=1,
                test=MER,
                channel_id=194,
                if_index=4,
                file_name=name + ".2",
                triggered_at=now,
                deadline=now,
            ),
        ]

    made = rows(running, "a.bin")
    with CaptureQueriesContext(connection) as queries:
        assert insert_rows_locking(made, Operation, {"id": running.pk, "state": "running"}) == made
    # One statement; inside the test's transaction, between a savepoint and its release.
    assert [query["sql"].split()[0] for query in queries] == ["SAVEPOINT", "WITH", "RELEASE"]
    assert "FOR UPDATE" in queries[1]["sql"]
    stored = {c.pk: (c.file_name, c.channel_id, c.deadline) for c in Capture.objects.all()}
    assert stored == {
        made[0].pk: ("a.bin", 193, now + timedelta(seconds=9)),
        made[1].pk: ("a.bin.2", 194, now),
    }
    refused = rows(stopped, "b.bin")
    assert insert_rows_locking(refused, Operation, {"id": stopped.pk, "state": "running"}) == []
    assert refused[0].pk is None
    assert Capture.objects.count() == 2
    # A name taken fails inside the caller's transaction without breaking it.
    with pytest.raises(IntegrityError):
        insert_rows_locking(rows(running, "a.bin"), Operation, {"id": running.pk})
    assert Capture.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_rows_wait_for_the_lock_and_see_the_state_it_left():
    """The lock orders the insert with whoever holds the row: an operation stopped while
    the insert waits gets no rows."""
    operation = make_operation(make_modem(1))
    now = timezone.now()
    started = threading.Event()
    result: list[list[Capture]] = []

    def insert() -> None:
        started.set()
        row = Capture(
            operation=operation,
            tick=1,
            test=MER,
            channel_id=193,
            if_index=3,
            file_name="late.bin",
            triggered_at=now,
            deadline=now,
        )
        result.append(
            insert_rows_locking([row], Operation, {"id": operation.pk, "state": "running"})
        )
        connections.close_all()

    with transaction.atomic():
        assert row_keys(Operation, {"id": operation.pk}, lock=True) == [operation.pk]
        waiting = threading.Thread(target=insert)
        waiting.start()
        started.wait(5)
        waiting.join(0.5)
        assert waiting.is_alive()  # blocked on the row lock
        Operation.objects.filter(pk=operation.pk).update(state=OperationState.STOPPED)
    waiting.join(10)
    assert result == [[]]
    assert not Capture.objects.exists()


SQLITE_SCRIPT = """
import threading
from datetime import timedelta
from django.utils import timezone
from captures.models import Capture, ChannelTally, Operation, OperationState
from core.rows import add_to, load_one, update_rows
from devices.models import CableModem as CableModemRow
from tests.factories import make_modem, make_operation, rxmer_capture
a, b = make_operation(make_modem(1)), make_operation(make_modem(2))
now = timezone.now()
a.last_tick, a.next_tick_at = 2, now + timedelta(seconds=9)
b.last_tick, b.next_tick_at = 5, None
assert update_rows([a, b], ["last_tick", "next_tick_at"]) == 2
got = dict(Operation.objects.values_list("pk", "last_tick"))
nxt = dict(Operation.objects.values_list("pk", "next_tick_at"))
assert got == {a.pk: 2, b.pk: 5}, got
assert nxt == {a.pk: now + timedelta(seconds=9), b.pk: None}, nxt
from core.rows import add_to
running = {"id": [a.pk], "state": "running"}
assert add_to(Operation, running, {"collected": 3}, {"updated": now}) == 1
assert Operation.objects.values_list("collected", "updated").get(pk=a.pk) == (3, now)
from core.rows import load_one
loaded = load_one(Operation, {"id": a.pk, "state": "running"})
assert loaded is not None and loaded.collected == 3 and loaded.metadata == a.metadata
assert loaded.next_tick_at == now + timedelta(seconds=9)
from core.rows import update_returning
took = update_returning(Operation, {"id": [a.pk, b.pk], "last_tick": 5}, {"last_tick": 6}, "id")
assert took == [b.pk], took
from captures import services
from tests.factories import rxmer_capture
c = rxmer_capture(a, 1, 193, "c.bin")
d = rxmer_capture(a, 1, 194, "d.bin")
assert services.mark_uploaded({c.pk: "/spool/c.bin", d.pk: "/spool/d.bin"}) == {c.pk, d.pk}
assert services.mark_uploaded({c.pk: "/spool/c.bin", d.pk: "/spool/other.bin"}) == {c.pk}
assert services.mark_stored([c.pk, d.pk]) == {c.pk, d.pk}
from core.rows import load_all, row_keys
assert [row.file_name for row in load_all(type(c), {"id": [d.pk, c.pk]})] == ["c.bin", "d.bin"]
assert row_keys(Operation, {"id": [a.pk, b.pk], "state": "running"}, lock=True) == [a.pk, b.pk]
from core.rows import insert_rows
made = insert_rows([ChannelTally(operation=a, test="", channel_id=None, missed=3)])
assert ChannelTally.objects.get(pk=made[0].pk).missed == 3
assert row_keys(ChannelTally, {"operation_id": a.pk, "channel_id": None}) == [made[0].pk]
from captures.models import OPERATION_MODES
e = services.start_operation(
    modem=make_modem(3), name="multi_rxmer", measure_mode=OPERATION_MODES["multi_rxmer"][0],
    duration_s=4, sample_interval_s=2,
)
services.update_metadata(e, channels={"ds_ofdm": [[3, 193]]})
stored = Operation.objects.get(pk=e.pk)
assert (stored.expected, stored.planned_ticks, stored.state) == (3, 3, "running"), stored
assert stored.metadata["channels"] == {"ds_ofdm": [[3, 193]]}, stored.metadata
assert stored.capture_group.capture_group_id and stored.next_tick_at == stored.started_at
from core.rows import Change, add_together, insert_rows_locking
t = ChannelTally.objects.create(operation=a, test="T", channel_id=5)
together = [Change(ChannelTally, {"id": t.pk}, {"collected": 2})]
def counted(state):
    first = Change(Operation, {"id": a.pk, "state": state}, {"collected": 2})
    return add_together(first, *together)
assert counted("running") == [a.pk]
assert counted("stopped") == []
assert ChannelTally.objects.get(pk=t.pk).collected == 2
def capture(name):
    return Capture(operation=a, tick=2, test="T", channel_id=5, if_index=1, file_name=name,
                   triggered_at=now, deadline=now)
late = [capture("e.bin")]
assert insert_rows_locking(late, Operation, {"id": a.pk, "state": "running"}) == late
assert Capture.objects.get(pk=late[0].pk).file_name == "e.bin"
assert insert_rows_locking([capture("f.bin")], Operation, {"id": a.pk, "state": "stop"}) == []
from core.rows import load_one_with
joined = load_one_with(Operation, {"id": a.pk}, "modem")
assert joined.modem.mac_address == CableModemRow.objects.get(pk=a.modem_id).mac_address
Operation.objects.filter(pk=e.pk).update(inflight_tick=1, inflight_lease="tok")
assert not services.final_tick_settled(e.pk, "tok")  # nothing settled yet
flagged = Operation.objects.get(pk=e.pk)
assert (flagged.final_tick_done, flagged.inflight_tick, flagged.inflight_lease) == (True, None, "")
print("sqlite ok")
"""


@pytest.mark.slow
def test_the_same_statements_work_on_the_demos_sqlite(tmp_path):
    embedded_manage(tmp_path, "migrate", "--noinput", "-v", "0")
    assert "sqlite ok" in embedded_manage(tmp_path, "shell", "-c", SQLITE_SCRIPT)


@pytest.mark.django_db(transaction=True)
def test_a_locked_join_holds_its_row_and_leaves_the_related_row_free():
    """``load_one_with(lock=True)``: the operation is locked in the same query that reads
    it with its modem (a claim's one statement), the modem row is not."""
    from django.db import OperationalError

    from devices.models import CableModem

    operation = make_operation(make_modem(1))
    taken: list[bool] = []

    def try_lock(model, pk) -> bool:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '300ms'")
                row_keys(model, {"id": pk}, lock=True)
            return True
        except OperationalError:
            return False

    def other_session() -> None:
        taken.extend([try_lock(Operation, operation.pk), try_lock(CableModem, operation.modem_id)])
        connections.close_all()

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        loaded = load_one_with(Operation, {"id": operation.pk}, "modem", lock=True)
        other = threading.Thread(target=other_session)
        other.start()
        other.join(10)

    assert loaded is not None
    assert loaded.modem.pk == operation.modem_id
    assert len(queries) == 1
    assert taken == [False, True]


@pytest.mark.django_db
def test_more_rows_than_one_statement_takes_go_in_batches(monkeypatch):
    operation = make_operation(make_modem(1))
    per_row = len(ChannelTally._meta.concrete_fields) - 1  # every column but the key
    monkeypatch.setattr("core.rows.POSTGRESQL_MAX_PARAMS", 2 * per_row)
    rows = [ChannelTally(operation=operation, test=MER, channel_id=c) for c in range(1, 6)]

    with CaptureQueriesContext(connection) as queries:
        assert insert_rows(rows) == rows
    inserts = [q["sql"] for q in queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 3  # 2 + 2 + 1 rows
    assert sorted(ChannelTally.objects.values_list("id", flat=True)) == [row.pk for row in rows]

    for number, row in enumerate(rows, start=1):
        row.planned = 10 * number
    monkeypatch.setattr("core.rows.POSTGRESQL_MAX_PARAMS", 2 * 2)  # key + planned: 2 a row
    with CaptureQueriesContext(connection) as queries:
        assert update_rows(rows, ["planned"]) == 5
    assert len([q for q in queries if q["sql"].startswith("UPDATE")]) == 3
    assert dict(ChannelTally.objects.values_list("channel_id", "planned")) == {
        number: 10 * number for number in range(1, 6)
    }


@pytest.mark.django_db(transaction=True)
def test_batches_go_in_together_or_not_at_all(monkeypatch):
    operation = make_operation(make_modem(1))
    per_row = len(ChannelTally._meta.concrete_fields) - 1
    monkeypatch.setattr("core.rows.POSTGRESQL_MAX_PARAMS", 2 * per_row)
    # The fifth row repeats the first's channel: the third batch breaks the unique key.
    rows = [ChannelTally(operation=operation, test=MER, channel_id=c) for c in (1, 2, 3, 4, 1)]

    with pytest.raises(IntegrityError):
        insert_rows(rows)

    assert not ChannelTally.objects.filter(operation=operation).exists()


@pytest.mark.django_db
def test_thousands_of_operations_start_in_one_call():
    """2,000 operations are more values than one statement's 65,535 parameters."""
    from captures import services
    from captures.models import MeasureMode, OperationName
    from devices.models import CableModem

    modems = CableModem.objects.bulk_create(
        CableModem(
            mac_address=f"02:00:5f:00:{index // 256:02x}:{index % 256:02x}",
            ip_address="127.0.0.1",
            snmp_port=1024 + index,
            community="private",
        )
        for index in range(2000)
    )
    columns = len(Operation._meta.concrete_fields) - 1
    assert 2000 * columns > 65_535

    started = services.start_operations(
        [(modem, "") for modem in modems],
        name=OperationName.MULTI_RXMER,
        measure_mode=MeasureMode.CONTINUOUS,
        duration_s=60,
        sample_interval_s=10,
    )

    assert len({operation.pk for operation in started}) == 2000
    running = Operation.objects.filter(state=OperationState.RUNNING, next_tick_at__isnull=False)
    assert running.count() == 2000
