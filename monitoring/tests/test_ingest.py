"""POST /api/v1/monitoring/samples: validation names the line, a bad batch writes nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.ingest import ingest_line_protocol
from monitoring.models import Instrument, RetentionState, Sample, Snapshot

URL = "/api/v1/monitoring/samples"
NOW_NS = time.time_ns()


def lp(name: str, k: int, fields: str = "top_in={k},bot_in=1,bot_out=2,top_out=3", ts=None):
    stamp = NOW_NS - 10**11 + k * 10**8 if ts is None else ts
    return f"bpm,instrument={name} {fields.format(k=k)} {stamp}"


def post_lines(integrator_client, lines: list[str], **params):
    query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    return integrator_client.post(URL + query, "\n".join(lines), content_type="text/plain")


def test_line_protocol_batch_is_written_with_its_snapshots(integrator_client, bpm):
    response = post_lines(integrator_client, [lp("10AE", k) for k in range(25)])
    assert response.status_code == 201, response.content
    assert response.json() == {"received": 25, "written": 25}
    assert Sample.objects.count() == 25
    snapshots = Snapshot.objects.filter(instrument=bpm)
    assert sum(s.n for s in snapshots) == 25
    earliest = Sample.objects.order_by("ts").first()
    first = snapshots.order_by("bucket").first()
    assert first is not None
    assert earliest is not None
    assert (first.ts, first.c0) == (earliest.ts, earliest.c0)


GOOD = [lp("10AE", k) for k in range(3)]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lp("NOPE", 9), "unknown instrument 'NOPE'"),
        (lp("10AE", 9, "top_in=nan,bot_in=1,bot_out=2,top_out=3"), "top_in is not finite"),
        (lp("10AE", 9, "top_in=1,bot_in=inf,bot_out=2,top_out=3"), "bot_in is not finite"),
        (lp("10AE", 9, "top_in=1,bot_in=1e999,bot_out=2,top_out=3"), "not finite"),
        (lp("10AE", 9, ts=NOW_NS + 3600 * 10**9), "s ahead"),
        (lp("10AE", 9, ts=10**30), "s ahead"),  # beyond int64
        (lp("10AE", 9, ts=-(10**30)), "before 1970"),
        (lp("10AE", 9, ts=-(10**9)), "before 1970"),
        (lp("10AE", 9, "top_in=1,bot_in=1,bot_out=2"), "expected 4 (top_in, bot_in, bot_out"),
        (lp("10AE", 9, "top_in=1,bot_in=1,bot_out=2,top_out=3,x=1"), "wrong channels"),
        (lp("10AE", 9, "top_in=1,bot_in=1,bot_out=2,side=3"), "wrong channels"),
        (lp("10AE", 9, 'top_in=1,bot_in=1,bot_out=2,top_out="x"'), "'top_out' is not a number"),
        (lp("10AE", 1), "duplicate timestamp"),
        ("bpm,instrument=10AE", "expected 'measurement"),
    ],
)
def test_a_bad_line_rejects_the_batch_naming_the_line(integrator_client, bpm, bad, message):
    response = post_lines(integrator_client, [*GOOD, "# comment", bad])
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["where"] == "line 5"
    assert message in body["errors"][0]["message"]
    assert body["detail"].startswith("line 5: ")
    assert Sample.objects.count() == 0
    assert Snapshot.objects.count() == 0


def test_any_field_order_and_number_form_is_accepted(integrator_client, bpm):
    lines = [
        lp("10AE", 0),  # the usual shape
        lp("10AE", 1, "top_out=4,bot_out=3,bot_in=2,top_in={k}"),  # fields in another order
        lp("10AE", 2, "top_in={k}i,bot_in=2u,bot_out=3,top_out=4"),  # integer forms
        f"10AE top_in=3,bot_in=2,bot_out=3,top_out=4 {NOW_NS - 10**10}",  # no instrument tag
        lp("10AE", 4, "top_in=1e1,bot_in=-.5,bot_out=+3.,top_out=4E-1"),
    ]
    response = post_lines(integrator_client, lines)
    assert response.status_code == 201, response.content
    stored = sorted(Sample.objects.values_list("c0", "c1", "c2", "c3"))
    assert stored == [
        (0.0, 1.0, 2.0, 3.0),
        (1.0, 2.0, 3.0, 4.0),
        (2.0, 2.0, 3.0, 4.0),
        (3.0, 2.0, 3.0, 4.0),
        (10.0, -0.5, 3.0, 0.4),
    ]


def test_samples_older_than_the_retention_watermark_are_refused(integrator_client, bpm):
    RetentionState.objects.create(watermark=datetime.now(UTC) - timedelta(seconds=50))
    response = post_lines(
        integrator_client, [lp("10AE", k) for k in range(0, 1000, 100)]
    )  # 100 s .. 0 s ago
    assert response.status_code == 400
    assert {e["message"] for e in response.json()["errors"]} == {
        "older than the retention watermark"
    }
    assert Sample.objects.count() == 0


def test_lenient_ingest_stores_the_good_lines_around_an_impossible_timestamp(bpm):
    """The listener's mode: a stamp beyond int64 is one bad line, not a failed batch."""
    lines = [lp("10AE", 0), lp("10AE", 1, ts=10**30), lp("10AE", 2)]
    result = ingest_line_protocol("\n".join(lines), strict=False)
    assert (result.received, result.written, result.rejected) == (3, 2, 1)
    assert [p.where for p in result.problems] == ["line 2"]
    assert Sample.objects.count() == 2


def test_a_retried_batch_writes_nothing_twice(integrator_client, bpm):
    lines = [lp("10AE", k) for k in range(30)]
    assert post_lines(integrator_client, lines[:20]).json()["written"] == 20
    again = post_lines(integrator_client, lines)  # the first 20 again, plus 10 new ones
    assert again.json() == {"received": 30, "written": 10}
    assert Sample.objects.count() == 30
    assert sum(Snapshot.objects.values_list("n", flat=True)) == 30


def test_precision_of_line_protocol_timestamps(integrator_client, bpm):
    seconds = int(time.time()) - 30
    response = post_lines(integrator_client, [lp("10AE", 0, ts=seconds)], precision="s")
    assert response.status_code == 201
    assert Sample.objects.get().ts == datetime.fromtimestamp(seconds, UTC)
    assert (
        post_lines(integrator_client, GOOD, precision="h").json()["errors"][0]["where"]
        == "precision"
    )


def test_json_batch_by_name_or_id_with_a_list_or_channel_map(integrator_client, bpm):
    recent = datetime.now(UTC) - timedelta(seconds=30)
    samples = [
        {"instrument": "10AE", "ts": recent.isoformat(), "values": [1, 2, 3, 4]},
        {
            "instrument": bpm.pk,
            "ts": recent.timestamp() + 0.1,
            "values": {"top_in": 5, "bot_in": 6, "bot_out": 7, "top_out": 8},
        },
    ]
    response = integrator_client.post(URL, {"samples": samples}, format="json")
    assert response.status_code == 201, response.content
    assert list(Sample.objects.order_by("c3").values_list("c3", flat=True)) == [4.0, 8.0]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({"instrument": "NOPE", "values": [1, 2, 3, 4]}, "unknown instrument"),
        # JSON true is a Python int (1): never instrument 1.
        ({"instrument": True, "values": [1, 2, 3, 4]}, "instrument must be a name or an"),
        ({"instrument": 1.0, "values": [1, 2, 3, 4]}, "instrument must be a name or an"),
        ({"instrument": "10AE", "values": [1, 2, 3]}, "wrong number of channels"),
        ({"instrument": "10AE", "values": [1, 2, 3, "4"]}, "top_out is not a number"),
        ({"instrument": "10AE", "values": [1, 2, 3, 4], "ts": "yesterday"}, "not ISO 8601"),
        ({"instrument": "10AE", "values": [1, 2, 3, 4], "ts": "2026-01-01T00:00"}, "time zone"),
        ({"instrument": "10AE", "values": [1, 2, 3, 4], "ts": 1e30}, "s ahead"),
        ({"instrument": "10AE", "values": [1, 2, 3, 4], "ts": "0001-01-01T00:00Z"}, "before 1970"),
    ],
)
def test_json_errors_name_the_sample(integrator_client, bpm, sample, message):
    good = {"instrument": "10AE", "ts": time.time() - 5, "values": [1, 2, 3, 4]}
    sample = {"ts": time.time() - 4, **sample}
    response = integrator_client.post(URL, [good, sample], format="json")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["where"] == "samples[1]"
    assert message in error["message"]
    assert Sample.objects.count() == 0


def test_json_nan_is_refused(integrator_client, bpm):
    body = '[{"instrument": "10AE", "ts": %f, "values": [NaN, 1, 2, 3]}]' % (time.time() - 5)
    response = integrator_client.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert "top_in is not finite" in response.json()["detail"]


def test_generic_instrument_with_two_channels(integrator_client, db):
    Instrument.objects.create(name="T1", kind=Instrument.Kind.GENERIC, channels=["temp", "rh"])
    response = post_lines(
        integrator_client, [f"env,instrument=T1 temp=21.5,rh=40 {NOW_NS - 10**9}"]
    )
    assert response.status_code == 201, response.content
    sample = Sample.objects.get()
    assert (sample.c0, sample.c1, sample.c2, sample.c3) == (21.5, 40.0, None, None)


def test_a_batch_mixing_layouts_and_shapes_keeps_each_line_its_values(integrator_client, bpm):
    Instrument.objects.create(name="T1", kind=Instrument.Kind.GENERIC, channels=["temp", "rh"])
    lines = [
        lp("10AE", 0),
        f"env,instrument=T1 temp=21.5,rh=40 {NOW_NS - 10**9}",
        "",
        lp("10AE", 1, "top_out=4,bot_out=3,bot_in=2,top_in={k}"),
        f"T1 rh=41,temp=22.5 {NOW_NS - 2 * 10**9}",
        lp("10AE", 2, "top_in=1,bot_in=1,bot_out=2,top_out=nan"),
    ]
    response = post_lines(integrator_client, lines)
    assert response.status_code == 400
    assert [e["where"] for e in response.json()["errors"]] == ["line 6"]
    response = post_lines(integrator_client, lines[:-1])
    assert response.json() == {"received": 4, "written": 4}
    stored = sorted(Sample.objects.values_list("c0", "c1", "c2", "c3"), key=str)
    assert stored == sorted(
        [
            (0.0, 1.0, 2.0, 3.0),
            (21.5, 40.0, None, None),
            (1.0, 2.0, 3.0, 4.0),
            (22.5, 41.0, None, None),
        ],
        key=str,
    )


def test_ingest_needs_authentication(client, bpm):
    response = client.post(URL, "\n".join(GOOD), content_type="text/plain")
    assert response.status_code in (401, 403)
    assert Sample.objects.count() == 0


def test_oversized_batch_is_refused(integrator_client, bpm, settings):
    settings.MONITORING_MAX_BATCH_BYTES = 1024
    response = post_lines(integrator_client, [lp("10AE", k) for k in range(100)])
    assert response.status_code == 413


def test_deleting_an_instrument_deletes_its_samples(integrator_client, bpm, bpms):
    post_lines(
        integrator_client, [lp("10AE", k) for k in range(5)] + [lp("BPM01", k) for k in range(5)]
    )
    bpm.delete()
    assert Sample.objects.count() == 5
    assert set(Snapshot.objects.values_list("instrument__name", flat=True)) == {"BPM01"}


def test_admin_lists_instruments_and_the_retention_state(admin_client, bpm):
    RetentionState.objects.create()
    assert b"10AE" in admin_client.get("/admin/monitoring/instrument/").content
    assert admin_client.get("/admin/monitoring/retentionstate/").status_code == 200


def test_admin_keeps_the_channels_of_an_existing_instrument(admin_client, db):
    """Samples are stored by channel position: a changed layout would misread them."""
    t1 = Instrument.objects.create(name="T1", kind=Instrument.Kind.GENERIC, channels=["temp"])
    url = f"/admin/monitoring/instrument/{t1.pk}/change/"
    form = {"name": "T1b", "kind": "generic", "channels": '["temp", "rh"]', "active": "on"}
    response = admin_client.post(url, form)
    assert response.status_code == 302
    t1.refresh_from_db()
    assert (t1.name, t1.channels) == ("T1b", ["temp"])
    add = admin_client.post("/admin/monitoring/instrument/add/", {**form, "name": "T2"})
    assert add.status_code == 302
    assert Instrument.objects.get(name="T2").channels == ["temp", "rh"]
