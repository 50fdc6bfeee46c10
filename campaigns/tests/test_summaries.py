"""A modem's summary is combined as its operation ends from the parts staging kept with its
files' transactions: no stored file is read again, and the figures agree with plain
arithmetic on the files' quarter-dB codes."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns import services
from campaigns.models import CampaignItem, ItemState
from campaigns.tests.test_dispatch import campaign
from captures import services as captures
from captures import staging
from captures.models import Operation, Transaction
from captures.pnm import RxMer, parse
from captures.pnm.errors import PnmFormatError
from tests.factories import make_modem, make_operation, uploaded_capture

pytestmark = pytest.mark.django_db
THRESHOLD_DB = 39.0


def started_operation() -> Operation:
    """The operation the campaign started for its one modem."""
    make_modem(1)
    run = services.start_run(campaign(mer_threshold_db=THRESHOLD_DB))
    services.dispatch_run(run)
    (item,) = CampaignItem.objects.all()
    assert item.operation is not None
    assert item.operation.summarise_files
    return item.operation


def stage_two_channels(operation: Operation) -> list[bytes]:
    """Two RxMER files of the operation's tick staged (channels 193 and 194)."""
    sent = []
    for channel_id in (193, 194):
        capture, data = uploaded_capture(operation, 1, channel_id)
        assert len(staging.stage_captures([capture.pk])) == 1
        sent.append(data)
    return sent


def finish(operation: Operation) -> tuple[CampaignItem, dict]:
    """The operation's last tick over: it completes and its item settles (with its figures)."""
    Operation.objects.filter(pk=operation.pk).update(final_tick_done=True)
    assert captures.maybe_complete(operation.pk)
    item = CampaignItem.objects.get(operation=operation)
    return item, item.figures or {}


def stored_files() -> list[Path]:
    root = Path(settings.FIELDRELAY_STORAGE_ROOT)
    return [root / path for path in Transaction.objects.values_list("stored_path", flat=True)]


def by_hand(sent: list[bytes]) -> list[float]:
    values = []
    for data in sent:
        parsed = parse(data)
        assert isinstance(parsed, RxMer)
        values += [code / 4 for code in parsed.raw.tolist() if code != 0xFF]
    return values


def test_the_summary_comes_from_the_parts_kept_at_staging_with_no_file_read():
    operation = started_operation()
    sent = stage_two_channels(operation)
    parts = [part or {} for part in Transaction.objects.values_list("summary_part", flat=True)]
    assert [part.get("kind") for part in parts] == ["rxmer", "rxmer"]
    assert all(len(part["codes"]) == len(part["counts"]) <= 255 for part in parts)
    for path in stored_files():
        path.unlink()  # a summary that read the files now could not be made

    item, figures = finish(operation)

    values = by_hand(sent)
    assert (item.state, item.summarised, item.metric) == (ItemState.DONE, True, "rxmer_p2_db")
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert item.value == pytest.approx(cuts[1], abs=1e-4)
    assert figures["mean_db"] == pytest.approx(statistics.fmean(values), abs=1e-4)
    assert figures["min_db"] == min(values)
    assert figures["below_threshold"] == sum(v < THRESHOLD_DB for v in values)
    assert (figures["subcarriers"], figures["channels"]) == (len(values), 2)
    assert services.progress(item.run).summaries_missing == 0


def test_a_file_staged_without_its_part_is_read_once_at_the_end():
    """Staged by an older version (no part): its stored file is read and summarised."""
    operation = started_operation()
    sent = stage_two_channels(operation)
    Transaction.objects.filter(channel_id=194).update(summary_part=None)

    item, figures = finish(operation)

    assert item.summarised
    assert figures["subcarriers"] == len(by_hand(sent))


def test_an_unreadable_file_without_its_part_leaves_the_item_done_but_unsummarised():
    operation = started_operation()
    stage_two_channels(operation)
    Transaction.objects.update(summary_part=None)
    for path in stored_files():
        path.unlink()

    item, _ = finish(operation)

    assert (item.state, item.summarised, item.value) == (ItemState.DONE, False, None)
    assert services.progress(item.run).summaries_missing == 1


def test_staging_keeps_no_part_for_an_operation_that_did_not_ask():
    operation = make_operation()
    assert not operation.summarise_files
    capture, _ = uploaded_capture(operation)

    [record] = staging.stage_captures([capture.pk])

    assert record.summary_part is None


def test_a_file_whose_body_does_not_parse_is_stored_without_a_part():
    operation = started_operation()
    _, good = uploaded_capture(operation, 1, 195)  # only for a valid header
    header_only = good[:-100]
    capture, _ = uploaded_capture(operation, 1, 196, data=header_only)
    with pytest.raises(PnmFormatError):
        parse(header_only)

    [record] = staging.stage_captures([capture.pk])

    assert record.summary_part is None
    assert record.size_before == len(header_only)


def test_operations_staged_together_end_together_in_the_same_statements_as_one():
    """Staging ends the operations of the files it stored together: their items are read,
    summarised and written once for all of them, so three operations ending cost the
    campaign tables the statements one does; each item gets its own modem's figures."""
    for number in range(1, 5):
        make_modem(number)
    run = services.start_run(campaign(mer_threshold_db=THRESHOLD_DB, max_per_cmts=4))
    services.dispatch_run(run)
    items = list(CampaignItem.objects.order_by("pk"))
    assert len(items) == 4
    uploaded = []
    for item in items:
        assert item.operation is not None
        capture, data = uploaded_capture(item.operation, 1, 193)
        Operation.objects.filter(pk=item.operation.pk).update(final_tick_done=True)
        uploaded.append((item, capture, data))

    def campaign_statements(captures_pks: list[int]) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert len(staging.stage_captures(captures_pks)) == len(captures_pks)
        return [q["sql"].split(" ")[0] for q in queries if '"campaigns_' in q["sql"]]

    alone = campaign_statements([uploaded[0][1].pk])
    together = campaign_statements([capture.pk for _item, capture, _data in uploaded[1:]])

    assert together == alone
    assert alone == ["SELECT", "SELECT", "UPDATE"]  # items (locked), runs, the ended items
    for item, _capture, data in uploaded:
        item.refresh_from_db()
        values = by_hand([data])
        assert (item.state, item.summarised) == (ItemState.DONE, True)
        assert item.figures is not None
        assert item.figures["mean_db"] == pytest.approx(statistics.fmean(values), abs=1e-4)
        assert item.figures["subcarriers"] == len(values)
    assert Operation.objects.filter(state="completed").count() == 4
