"""The worker against real mosquitto and redis-server: match, reject, live catalog, reconnect;
the tests that read the catalog (items, keypoints, corrections) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import Correction, ItemSource
from edgelens.catalog.notify import notify_catalog_changed
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.worker import Worker
from edgelens.featurizer.focus import focus_view_jpeg
from edgelens.samples.photos import load_photo
from edgelens.samples.views import camera_views
from edgelens.testing.live import always_confirming, records, send_features, wait_for
from edgelens.wire.features import (
    MAX_JPEG_BYTES,
    MAX_MESSAGE_BYTES,
    FeatureMessage,
    WireDtype,
    decode,
    encode,
)
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import (
    DEVICES_KEY,
    features_topic,
    matches_channel,
    matches_key,
    status_topic,
    view_key,
    view_vectors_key,
)
from edgelens.wire.records import Decision, MatchRecord, Stage


@pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"])
def test_a_camera_view_is_matched_and_pushed_lifo(worker, publisher, rdb, featurizer):
    pubsub = rdb.pubsub()
    pubsub.subscribe(matches_channel("cam-1"))
    views = camera_views(load_photo("coffee"), 1, seed=5) + camera_views(
        load_photo("rocket"), 1, seed=6
    )
    for seq, view in enumerate(views, start=1):
        send_features(
            publisher,
            featurizer,
            view,
            seq=seq,
            dtype=WireDtype.INT8 if seq == 2 else WireDtype.FLOAT16,
        )
        wait_for(lambda n=seq: rdb.llen(matches_key("cam-1")) >= n)
    newest, oldest = records(rdb)
    assert (newest.seq, oldest.seq) == (2, 1), "LIFO: newest at index 0"
    assert oldest.matches[0].item_id == "coffee" and oldest.matches[0].name == "Coffee cup"
    assert newest.matches[0].item_id == "rocket"
    assert len(newest.matches) == 5
    assert [m.score for m in newest.matches] == sorted(
        (m.score for m in newest.matches), reverse=True
    )
    assert newest.model_id == featurizer.model_id and newest.latency_ms > 0
    assert {"transit", "queue", "decode", "search"} <= set(newest.stages_ms)
    assert not newest.view and not rdb.keys(view_key("cam-1", "*")), "no view sent, none kept"
    notes = []
    wait_for(
        lambda: (
            notes.append(pubsub.get_message(timeout=0.1))
            or sum(1 for n in notes if n and n["type"] == "message") >= 2
        )
    )
    announced = [MatchRecord.from_json(n["data"]) for n in notes if n and n["type"] == "message"]
    assert [r.seq for r in announced] == [1, 2]


def test_with_a_focus_vector_each_item_scores_the_better_of_the_two(
    worker, publisher, rdb, featurizer
):
    frame, focus = load_photo("coffee"), load_photo("rocket")
    send_features(publisher, featurizer, frame, seq=1)
    send_features(publisher, featurizer, frame, seq=2, focus_image=focus)
    wait_for(lambda: rdb.llen(matches_key("cam-1")) >= 2)
    with_focus, frame_only = records(rdb)
    scores = {m.item_id: m.score for m in with_focus.matches}
    alone = {m.item_id: m.score for m in frame_only.matches}
    assert with_focus.matches[0].item_id in {"coffee", "rocket"}
    assert {"coffee", "rocket"} <= set(scores)  # each found by its own view
    assert scores["coffee"] == pytest.approx(alone["coffee"], abs=1e-3)  # the frame's score
    assert scores["rocket"] > alone.get("rocket", -1.0)  # the focus box's, better
    assert [m.score for m in with_focus.matches] == sorted(scores.values(), reverse=True)


def _confirmed(rdb, device="cam-1", n=1) -> list[MatchRecord]:
    """The device's records once ``n`` of them are confirmed (stage two replaced them)."""
    wait_for(lambda: sum(r.stage is Stage.CONFIRMED for r in records(rdb, device)) >= n)
    return records(rdb, device)


def test_the_worker_featurizes_a_colour_view_that_came_without_its_vector(
    confirming_worker, publisher, rdb, featurizer
):
    """The device's default: the frame's vector and, once settled, its focus view; stage
    two makes the vectors of the view's boxes with the catalog's model."""
    frame = load_photo("coffee")
    rocket_view = focus_view_jpeg(load_photo("rocket"), MAX_JPEG_BYTES)
    grey = cv2.cvtColor(load_photo("rocket"), cv2.COLOR_BGR2GRAY)
    grey_view = cv2.imencode(".jpg", grey)[1].tobytes()
    for device, view in (("cam-1", None), ("cam-2", rocket_view), ("cam-3", grey_view)):
        send_features(publisher, featurizer, frame, device=device, view_jpeg=view)
    (worker_made,) = _confirmed(rdb, "cam-2")
    (grey_sent,) = _confirmed(rdb, "cam-3")
    (frame_only,) = records(rdb, "cam-1")
    assert frame_only.stage is Stage.FIRST
    alone = {m.item_id: m.score for m in frame_only.matches}
    focused = {m.item_id: m.score for m in worker_made.matches}
    assert "focus" in worker_made.stages_ms and "focus" not in frame_only.stages_ms
    assert focused["coffee"] == pytest.approx(alone["coffee"], abs=1e-3)  # the frame's score
    assert focused["rocket"] > alone.get("rocket", -1.0) + 0.1  # its box's, much better
    # a grey view is verified, not featurized (the network wants colour)
    assert "focus" not in grey_sent.stages_ms and "verify" in grey_sent.stages_ms


def test_a_worker_whose_model_file_is_broken_answers_from_the_frames_vector(
    live_settings, publisher, rdb, featurizer, tmp_path, caplog
):
    """The manifests but a truncated ONNX file: the focus view is not featurized, and said;
    the messages are still answered (and verified)."""
    manifests = tmp_path / "models"
    manifests.mkdir()
    for manifest in live_settings.model_path.glob("*.json"):
        shutil.copy(manifest, manifests)
        onnx = manifest.with_suffix(".onnx")
        (manifests / onnx.name).write_bytes(onnx.read_bytes()[:1000])
    w = Worker(always_confirming(live_settings).model_copy(update={"models_dir": manifests}))
    w.start()
    try:
        wait_for(w.subscribed.is_set)
        view = focus_view_jpeg(load_photo("rocket"), MAX_JPEG_BYTES)
        send_features(publisher, featurizer, load_photo("coffee"), view_jpeg=view)
        (record,) = _confirmed(rdb)
    finally:
        w.stop()
    assert "focus" not in record.stages_ms and "verify" in record.stages_ms
    assert "will not be featurized: " in caplog.text


@pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"])
def test_stage_two_confirms_the_same_frame_in_place_and_announces_it(
    confirming_worker, publisher, rdb, featurizer, caplog
):
    """The vector sees coffee and rocket side by side (rocket first); the focus view shows
    the cup: the first answer says rocket at once, the confirmed one coffee, for the same
    frame, in the same list entry. An unusable view leaves the first answer standing."""
    pubsub = rdb.pubsub()
    pubsub.subscribe(matches_channel("cam-1"))
    both = np.hstack([cv2.resize(load_photo(p), (320, 480)) for p in ("coffee", "rocket")])
    cup_view = focus_view_jpeg(camera_views(load_photo("coffee"), 1, seed=3)[0], MAX_JPEG_BYTES)
    send_features(publisher, featurizer, both, seq=1, view_jpeg=cup_view)
    (verified,) = _confirmed(rdb)
    assert verified.seq == 1 and "verify" in verified.stages_ms
    # the view is kept for the device page (and corrections), and the records say so
    assert verified.view and rdb.get(view_key("cam-1", 1)) == cup_view
    assert 0 < rdb.ttl(view_key("cam-1", 1)) <= 900
    assert [m.item_id for m in verified.matches[:2]] == ["coffee", "rocket"]
    assert verified.matches[0].verified is True and len(verified.matches) == 5
    notes = []
    wait_for(
        lambda: (
            notes.append(pubsub.get_message(timeout=0.1))
            or sum(1 for n in notes if n and n["type"] == "message") >= 2
        )
    )
    first, confirmed = [
        MatchRecord.from_json(n["data"]) for n in notes if n and n["type"] == "message"
    ]
    assert (first.seq, first.stage, confirmed.seq, confirmed.stage) == (
        1,
        Stage.FIRST,
        1,
        Stage.CONFIRMED,
    )
    assert [m.item_id for m in first.matches[:2]] == ["rocket", "coffee"]
    assert "verify" not in first.stages_ms and first.latency_ms < confirmed.latency_ms
    assert first.view
    tiny = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()  # 8x8 px
    send_features(publisher, featurizer, both, device="cam-2", view_jpeg=tiny)
    wait_for(lambda: confirming_worker.stats.snapshot().get("confirm_unusable_view") == 1)
    # Counted as stage two gives up, before the pusher has stored the first answer.
    (corrupt,) = wait_for(lambda: records(rdb, "cam-2"))
    assert corrupt.stage is Stage.FIRST and [m.item_id for m in corrupt.matches[:2]] == [
        "rocket",
        "coffee",
    ]
    assert "first answer stands, the view is unusable" in caplog.text


def test_a_late_confirmation_is_stored_for_its_frame_behind_the_newer_one(
    confirming_worker, publisher, rdb, featurizer
):
    """Stage two of frame 1 ends after frame 2 was answered: the list holds frame 2 first,
    then frame 1 confirmed, one entry each."""
    cup = camera_views(load_photo("coffee"), 1, seed=3)[0]
    send_features(publisher, featurizer, cup, seq=1, view_jpeg=focus_view_jpeg(cup, MAX_JPEG_BYTES))
    send_features(publisher, featurizer, load_photo("rocket"), seq=2)
    newest, older = _confirmed(rdb)
    assert (newest.seq, newest.stage) == (2, Stage.FIRST)
    assert (older.seq, older.stage) == (1, Stage.CONFIRMED)
    assert rdb.llen(matches_key("cam-1")) == 2


@pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"])
def test_the_same_view_is_confirmed_once_per_catalog(
    confirming_worker, publisher, rdb, featurizer, live_settings
):
    """A device that sends its view with every frame (the first version-3 devices): every
    frame answered at once, the view confirmed once; after a catalog change (a correction of
    that view, say) the same view is confirmed again."""
    view = camera_views(load_photo("coffee"), 1, seed=4)[0]
    jpeg = focus_view_jpeg(view, MAX_JPEG_BYTES)
    for seq in range(1, 11):  # as a camera sends them: each once the one before is answered
        send_features(publisher, featurizer, view, seq=seq, view_jpeg=jpeg)
        wait_for(lambda seq=seq: rdb.llen(matches_key("cam-1")) >= seq)
    _confirmed(rdb)
    assert all(r.matches[0].item_id == "coffee" for r in records(rdb))  # answered all the same
    # The pusher counts a record once Redis has stored it: a moment after a reader sees it.
    stats = wait_for(
        lambda: (
            (s := confirming_worker.stats.snapshot()).get("matched", 0) >= 10
            and s.get("confirmed", 0) >= 1
            and s
        )
    )
    assert stats["matched"] == 10 and stats["confirmed"] == 1
    assert stats["confirm_same_view"] == 9

    store = CatalogStore(live_settings.catalog_url)
    store.remove(["clock"])
    store.close()
    wait_for(lambda: "clock" not in confirming_worker.index)
    send_features(publisher, featurizer, view, seq=11, view_jpeg=jpeg)
    wait_for(lambda: confirming_worker.stats.snapshot()["confirmed"] == 2)
    assert confirming_worker.stats.snapshot()["confirm_same_view"] == 9


@pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"])
def test_a_view_corrected_as_not_in_the_catalog_is_answered_so_from_the_next_frame(
    worker, publisher, rdb, featurizer, live_settings
):
    """The worker remembers a corrected view (the catalog keeps it with the correction):
    the same view again is "no match" at once, other views are answered as before."""
    view = camera_views(load_photo("coffee"), 1, seed=5)[0]
    jpeg = focus_view_jpeg(view, MAX_JPEG_BYTES)
    send_features(publisher, featurizer, view, seq=1, view_jpeg=jpeg)
    (first,) = wait_for(lambda: records(rdb))
    assert first.decision is Decision.MATCH and not first.corrected

    kept = rdb.get(view_vectors_key("cam-1", 1))
    assert decode(kept).model_id == featurizer.model_id, "the frame's vectors kept beside its view"
    store = CatalogStore(live_settings.catalog_url)
    with store.transaction() as write:
        correction = Correction(0, time.time(), "admin", "cam-1", 1, None, None)
        write.log_correction(correction, view=rdb.get(view_key("cam-1", 1)), vectors=kept)
    notify_catalog_changed(store=store, redis_url=str(live_settings.redis_url))
    store.close()

    def answered(seq: int, image: np.ndarray) -> MatchRecord:
        send_features(
            publisher, featurizer, image, seq=seq, view_jpeg=focus_view_jpeg(image, MAX_JPEG_BYTES)
        )
        return wait_for(lambda: next((r for r in records(rdb) if r.seq == seq), None))

    seq = 1
    while not (again := answered(seq := seq + 1, view)).corrected:
        assert seq < 40, "the correction never reached the worker"
        time.sleep(0.1)
    assert again.decision is Decision.NO_MATCH and again.stage is Stage.FIRST
    assert again.matches[0].item_id == "coffee", "the nearest items are still ranked"
    other = answered(seq + 1, camera_views(load_photo("rocket"), 1, seed=5)[0])
    assert not other.corrected and other.matches[0].item_id == "rocket"


def test_the_list_is_trimmed(live_settings, publisher, rdb, featurizer):
    settings = live_settings.model_copy(
        update={"worker": live_settings.worker.model_copy(update={"matches_kept": 3})}
    )
    w = Worker(settings)
    w.start()
    try:
        wait_for(w.subscribed.is_set)
        image = load_photo("clock")
        for seq in range(1, 6):
            send_features(publisher, featurizer, image, seq=seq)
        wait_for(lambda: w.stats.snapshot().get("matched", 0) >= 5)
        assert [r.seq for r in records(rdb)] == [5, 4, 3]
    finally:
        w.stop()


def test_wrong_model_and_malformed_messages_are_rejected_and_counted(
    worker, publisher, rdb, featurizer
):
    send_features(
        publisher,
        featurizer,
        load_photo("coffee"),
        seq=1,
        model_id="efficientnet-lite0-int8-000000000000",
    )
    publisher.publish(features_topic("cam-1"), b"garbage").wait_for_publish(5)
    publisher.publish(features_topic("cam-1"), b"EL\x01\x01" + b"\x00" * 30).wait_for_publish(5)
    send_features(
        publisher, featurizer, load_photo("coffee"), seq=2, device="cam-2"
    )  # topic mismatch
    message = FeatureMessage(
        "cam-2", 3, time.time(), featurizer.model_id, featurizer.embed([load_photo("coffee")])[0]
    )
    publisher.publish(features_topic("cam-1"), encode(message)).wait_for_publish(5)
    send_features(
        publisher, featurizer, load_photo("coffee"), seq=4
    )  # a good one still goes through
    wait_for(lambda: rdb.llen(matches_key("cam-1")) == 1)
    stats = wait_for(lambda: (s := worker.stats.snapshot()).get("matched", 0) >= 2 and s)
    assert stats["rejected_wrong_model"] == 1
    assert stats["rejected_malformed"] == 2
    assert stats["rejected_device_mismatch"] == 1
    assert [r.seq for r in records(rdb)] == [4]


def test_replayed_old_future_and_oversized_messages_are_refused(worker, publisher, rdb, featurizer):
    vector = featurizer.embed([load_photo("coffee")])[0]
    now = time.time()

    def publish(seq: int, captured_at: float) -> None:
        payload = encode(FeatureMessage("cam-1", seq, captured_at, featurizer.model_id, vector))
        publisher.publish(features_topic("cam-1"), payload).wait_for_publish(5)

    publish(5, now)
    wait_for(lambda: rdb.llen(matches_key("cam-1")) == 1)
    publish(5, now)  # the same message again: a replay
    publish(4, now - 1)  # older than what was answered
    publish(6, now + 3600)  # a clock an hour ahead
    oversized = b"EL" + b"\x00" * MAX_MESSAGE_BYTES
    publisher.publish(features_topic("cam-1"), oversized).wait_for_publish(5)
    publish(0, now + 1)  # a restarted device: seq starts again, its clock moved on
    wait_for(lambda: rdb.llen(matches_key("cam-1")) == 2)
    stats = worker.stats.snapshot()
    assert stats["rejected_replayed"] == 1 and stats["rejected_out_of_order"] == 1
    assert stats["rejected_clock_ahead"] == 1 and stats["rejected_oversized"] == 1
    assert [r.seq for r in records(rdb)] == [0, 5]
    assert "errors_unexpected" not in stats


@pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"])
def test_catalog_changes_are_searched_without_restart(
    worker, publisher, rdb, featurizer, live_settings, tmp_path
):
    import cv2

    astronaut = load_photo("astronaut")
    store = CatalogStore(live_settings.catalog_url)
    store.remove(["astronaut"])
    wait_for(lambda: "astronaut" not in worker.index)
    send_features(publisher, featurizer, astronaut, seq=1)
    wait_for(lambda: rdb.llen(matches_key("cam-1")) == 1)
    assert "astronaut" not in {m.item_id for m in records(rdb)[0].matches}

    path = tmp_path / "space.png"
    cv2.imwrite(str(path), astronaut)
    add_items(
        store=store,
        featurizer=featurizer,
        sources=[ItemSource("space-suit", (path,), "Space suit")],
        images_dir=live_settings.images_dir,
    )
    store.close()
    wait_for(lambda: "space-suit" in worker.index)
    send_features(publisher, featurizer, astronaut, seq=2)
    wait_for(lambda: rdb.llen(matches_key("cam-1")) == 2)
    assert records(rdb)[0].matches[0].item_id == "space-suit"


def test_device_status_reaches_the_devices_hash(worker, publisher, rdb):
    status = {"state": "online", "device_id": "cam-9", "model_id": "m"}
    publisher.publish(
        status_topic("cam-9"), json.dumps(status), qos=1, retain=True
    ).wait_for_publish(5)
    raw = wait_for(lambda: rdb.hget(DEVICES_KEY, "cam-9"))
    assert json.loads(raw)["state"] == "online"


def test_two_workers_split_the_load(live_settings, publisher, rdb, featurizer):
    workers = [Worker(live_settings) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            wait_for(w.subscribed.is_set)
        image = load_photo("coins")
        for seq in range(1, 21):
            send_features(publisher, featurizer, image, seq=seq)
        wait_for(lambda: sum(w.stats.snapshot().get("matched", 0) for w in workers) == 20)
        counts = [w.stats.snapshot().get("matched", 0) for w in workers]
        assert all(c > 0 for c in counts), counts
        assert rdb.llen(matches_key("cam-1")) == 20
    finally:
        for w in workers:
            w.stop()


def test_worker_reconnects_after_the_broker_restarts(
    worker, live_settings, mosquitto_server, rdb, featurizer
):
    mosquitto_server.stop()
    wait_for(lambda: not worker.subscribed.is_set())
    mosquitto_server.start()
    wait_for(worker.subscribed.is_set, timeout=40)
    client = make_client(str(live_settings.mqtt_url), client_id="late-device")
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    connect_async(client, str(live_settings.mqtt_url))
    try:
        assert connected.wait(10)
        send_features(client, featurizer, load_photo("moon"), seq=7)
        wait_for(lambda: rdb.llen(matches_key("cam-1")) == 1)
        assert records(rdb)[0].matches[0].item_id == "moon"
    finally:
        client.disconnect()
        client.loop_stop()


def test_worker_survives_redis_going_away(worker, publisher, redis_server, rdb, featurizer):
    redis_server.stop()
    send_features(publisher, featurizer, load_photo("coffee"), seq=1)
    wait_for(lambda: worker.stats.snapshot().get("redis_errors", 0) >= 1)
    redis_server.start()
    send_features(publisher, featurizer, load_photo("coffee"), seq=2)
    wait_for(lambda: rdb.llen(matches_key("cam-1")) == 1, timeout=15)
    assert records(rdb)[0].seq == 2


def test_int8_device_vectors_search_the_fp32_catalog(worker, publisher, rdb, featurizers):
    """INT8 derived from the catalog's FP32 model, measured to agree: searched."""
    int8 = featurizers["int8"]
    send_features(publisher, int8, load_photo("clock"), seq=1, model_id=int8.model_id)
    wait_for(lambda: rdb.llen(matches_key("cam-1")) == 1)
    record = records(rdb)[0]
    assert record.model_id == int8.model_id and record.matches[0].item_id == "clock"


def test_vectors_of_another_embedding_space_are_refused_with_the_reason(
    worker, publisher, rdb, models_dir, caplog
):
    from edgelens.featurizer.runtime import Featurizer

    gap = Featurizer.from_models_dir(models_dir, "fp32", "gap", providers=["cpu"])
    send_features(publisher, gap, load_photo("clock"), seq=1, model_id=gap.model_id)
    wait_for(lambda: worker.stats.snapshot().get("rejected_wrong_model", 0) == 1)
    wait_for(lambda: "another embedding space" in caplog.text)  # logged after it is counted
    assert rdb.llen(matches_key("cam-1")) == 0


def test_a_clear_first_answer_is_final_and_a_thing_not_in_the_catalog_is_no_match(
    worker, publisher, rdb, featurizer
):
    """With the default settings: the coffee cup leads every other item by far, so its view
    is not verified; random noise is answered "no match" (no card is an answer)."""
    cup = load_photo("coffee")
    send_features(publisher, featurizer, cup, view_jpeg=focus_view_jpeg(cup, MAX_JPEG_BYTES))
    noise = np.random.default_rng(9).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    jpeg = focus_view_jpeg(noise, MAX_JPEG_BYTES)
    send_features(publisher, featurizer, noise, device="cam-2", view_jpeg=jpeg)
    (clear,) = wait_for(lambda: records(rdb))
    assert clear.stage is Stage.FIRST and clear.decision is Decision.MATCH
    assert clear.matches[0].item_id == "coffee"
    (unknown,) = wait_for(lambda: records(rdb, "cam-2"))
    assert unknown.decision is Decision.NO_MATCH
    wait_for(lambda: worker.stats.snapshot().get("confirmed"))
    assert records(rdb, "cam-2")[0].decision is Decision.NO_MATCH, "confirmed: still none"
    stats = worker.stats.snapshot()
    assert stats["matched"] == 2 and "confirm_queued" in stats, "only the noise's view"
