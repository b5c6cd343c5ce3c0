"""The match record's JSON: a round trip, and records an older worker wrote."""

import json

import pytest

from edgelens.errors import EdgelensError
from edgelens.wire.records import Match, MatchRecord


def _record() -> MatchRecord:
    matches = [
        Match("coffee", "Coffee cup", 3.5, "EUR", True, 0.91, True),
        Match("rocket", "Rocket", None, "EUR", False, 0.42, False),
        Match("moon", "Moon", 1.0, "EUR", True, 0.40),
    ]
    return MatchRecord("cam", 7, 1_700_000_000.5, "model-x", 42.0, matches, {"search": 1.5})


def test_a_record_survives_its_json():
    record = _record()
    assert MatchRecord.from_json(record.to_json()) == record
    assert [m["verified"] for m in json.loads(record.to_json())["matches"]] == [True, False, None]


def test_a_record_without_verdicts_reads_as_not_looked_for():
    """Records pushed before matches carried ``verified`` are still in Redis lists."""
    data = json.loads(_record().to_json())
    for match in data["matches"]:
        del match["verified"]
    old = MatchRecord.from_json(json.dumps(data))
    assert [m.verified for m in old.matches] == [None, None, None]
    assert [m.item_id for m in old.matches] == ["coffee", "rocket", "moon"]


def test_a_record_with_unknown_fields_is_an_error():
    data = json.loads(_record().to_json())
    data["matches"][0]["colour"] = "red"
    with pytest.raises(EdgelensError, match="invalid match record"):
        MatchRecord.from_json(json.dumps(data))
