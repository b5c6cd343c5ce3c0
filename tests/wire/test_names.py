from edgelens.wire.names import (
    device_of_topic,
    features_topic,
    matches_key,
    shared_subscription,
    status_topic,
)


def test_topics_and_keys():
    assert features_topic("cam-1") == "edgelens/cam-1/features"
    assert status_topic("cam-1") == "edgelens/cam-1/status"
    assert shared_subscription("g", "edgelens/+/features") == "$share/g/edgelens/+/features"
    assert matches_key("cam-1") == "edgelens:matches:cam-1"


def test_device_of_topic_refuses_foreign_or_wild_topics():
    assert device_of_topic("edgelens/cam-1/features") == "cam-1"
    assert device_of_topic("edgelens/+/features") is None
    assert device_of_topic("other/cam-1/features") is None
    assert device_of_topic("edgelens/cam-1/features/extra") is None
