"""Ids are matched whole: a trailing newline (which ``$`` lets through) is refused."""

import pytest
from pydantic import ValidationError

from edgelens.catalog.models import ITEM_ID_PATTERN
from edgelens.settings import DeviceSettings
from edgelens.wire.names import device_of_topic, valid_device_id


@pytest.mark.parametrize("bad", ["cam\n", "cam/1", "+", "#", "", "-cam", "c" * 65, "cam\x00"])
def test_bad_device_ids_are_refused_everywhere(bad):
    assert not valid_device_id(bad)
    assert device_of_topic(f"edgelens/{bad}/features") is None
    with pytest.raises(ValidationError):
        DeviceSettings(device_id=bad)


@pytest.mark.parametrize("bad", ["coffee\n", "coffee/delete", "../x", "", "c" * 129])
def test_bad_item_ids_are_refused(bad):
    assert not ITEM_ID_PATTERN.match(bad)


def test_good_ids_pass():
    assert valid_device_id("shelf-3.cam_1") and DeviceSettings(device_id="shelf-3").device_id
    assert ITEM_ID_PATTERN.match("coffee-mug_2.l")
