"""Line protocol parsing, on strings alone."""

from __future__ import annotations

import pytest

from monitoring.lineprotocol import iter_lines, parse_line


def test_plain_line():
    point = parse_line("bpm,instrument=10AE top_in=1.5,bot_in=-2,bot_out=3i,top_out=4u 17")
    assert point.measurement == "bpm"
    assert point.tags == {"instrument": "10AE"}
    assert point.fields == {"top_in": 1.5, "bot_in": -2.0, "bot_out": 3.0, "top_out": 4.0}
    assert point.timestamp == 17


def test_escapes_and_quotes_take_the_slow_path():
    point = parse_line(r"my\ bpm,instrument=A\,B,room=x\=1 v\ 1=1e3 5")
    assert point.measurement == "my bpm"
    assert point.tags == {"instrument": "A,B", "room": "x=1"}
    assert point.fields == {"v 1": 1000.0}
    assert point.timestamp == 5
    # the quoted space and comma do not split; the string field is then refused by name
    with pytest.raises(ValueError, match="'note' is not a number"):
        parse_line('bpm v=1,note="a, b" 5')


def test_no_timestamp_means_receive_time():
    assert parse_line("bpm x=1").timestamp is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("bpm", "expected 'measurement"),
        ("bpm x=1 2 3", "expected 'measurement"),
        ("bpm x 1", "is not key=value"),
        ("bpm x=true 1", "'x' is not a number"),
        ("bpm x=abc 1", "'x' is not a number"),
        ("bpm x=1 1.5", "timestamp '1.5' is not an integer"),
        ("bpm,tag x=1 1", "tag 'tag' is not key=value"),
        ('bpm x="open 1', "unterminated"),
    ],
)
def test_malformed_lines_say_why(line, message):
    with pytest.raises(ValueError, match=message):
        parse_line(line)


def test_nan_and_inf_parse_as_floats_for_the_validator_to_refuse():
    assert parse_line("bpm x=nan,y=inf 1").fields["y"] == float("inf")


def test_iter_lines_numbers_lines_and_skips_blanks_and_comments():
    text = "# header\n\nbpm x=1 1\r\n  \nbpm x=2 2"
    assert list(iter_lines(text)) == [(3, "bpm x=1 1"), (5, "bpm x=2 2")]
