"""Recorded sources through the capture thread, and the device against a real mosquitto."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgelens.cli.main import app as cli_app
from edgelens.demo.servers import MosquittoServer, free_port
from edgelens.device.capture import Backoff, FrameCapture
from edgelens.device.frames import LatestFrameMailbox
from edgelens.device.loop import DeviceLoop
from edgelens.device.publisher import FeaturePublisher
from edgelens.device.sources import open_source, parse_source
from edgelens.errors import SourceError
from edgelens.featurizer.focus import decode_focus_view, focus_crop
from edgelens.samples.photos import load_photo
from edgelens.settings import DeviceSettings
from edgelens.testing.live import MqttRecorder
from edgelens.wire.features import FeatureMessage, WireDtype, decode
from edgelens.wire.names import features_topic, status_topic
from edgelens.wire.status import DeviceStatus


def _write_video(path: Path, *, frames: int, fps: float) -> Path:
    """An MJPG clip of the coffee photo at 320x240 with the frame number drawn on it."""
    photo = cv2.resize(load_photo("coffee"), (320, 240))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for number in range(frames):
        image = photo.copy()
        cv2.putText(image, str(number), (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 3, (0, 0, 255), 5)
        writer.write(image)
    writer.release()
    return path


def _capture(source: str, *, fps_cap: float = 30, backoff_s: float = 0.1) -> FrameCapture:
    """A capture as the device loop makes it: files and folders are not retried."""
    spec = parse_source(source)
    return FrameCapture(
        lambda: open_source(spec, fps_cap=fps_cap),
        LatestFrameMailbox(),
        name=source,
        loop=False,
        backoff=Backoff(initial_s=backoff_s, max_s=4 * backoff_s),
        retry=not spec.recorded,
    )


def _play(capture: FrameCapture) -> tuple[list[int], float]:
    """Run a capture to its end with a fast consumer; the seqs seen and the seconds taken."""
    started = time.monotonic()
    capture.start()
    seqs = []
    while not capture.mailbox.finished:
        frame = capture.mailbox.get(timeout=5)
        if frame is not None:
            seqs.append(frame.seq)
    capture.join(5)
    return seqs, time.monotonic() - started


def _wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Subscriber(MqttRecorder):
    """Every message on one topic filter, read as statuses and feature messages."""

    def __init__(self, server: MosquittoServer, topic: str) -> None:
        super().__init__(server.port, topic)

    def states(self, device_id: str) -> list[str]:
        return [json.loads(p)["state"] for p in self.payloads(status_topic(device_id))]

    def features(self, device_id: str) -> list[FeatureMessage]:
        return [decode(p) for p in self.payloads(features_topic(device_id))]


@pytest.fixture
def subscribe(mosquitto_server):
    opened: list[Subscriber] = []

    def open_subscriber(topic: str) -> Subscriber:
        opened.append(Subscriber(mosquitto_server, topic))
        return opened[-1]

    yield open_subscriber
    for subscriber in opened:
        subscriber.close()


def test_video_plays_at_its_own_rate_and_ends(tmp_path):
    video = _write_video(tmp_path / "clip.avi", frames=10, fps=10)
    seqs, seconds = _play(_capture(f"file://{video}", fps_cap=100))
    assert seqs == list(range(10))
    assert seconds >= 0.7  # 10 frames at 10 fps, not as fast as the disk allows


def test_folder_plays_at_the_fps_cap(tmp_path):
    for name in ("c.png", "a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), load_photo("rocket"))
    seqs, seconds = _play(_capture(str(tmp_path), fps_cap=5))
    assert seqs == [0, 1, 2]
    assert seconds >= 0.3  # two 0.2 s gaps


def _unplayable(tmp_path: Path, name: str) -> Path:
    """``missing.mp4`` does not exist; any other name is a text file."""
    path = tmp_path / name
    if name != "missing.mp4":
        path.write_text("hello, I am not an image\n")
    return path


UNPLAYABLE = [
    ("missing.mp4", "no such file"),
    ("notanimage.jpg", "cannot decode"),
    ("broken.avi", "not a video or image"),
]


@pytest.mark.parametrize(("name", "message"), UNPLAYABLE)
def test_a_file_that_gives_no_frame_fails_before_the_device_starts(
    featurizer, tmp_path, name, message
):
    device = DeviceSettings(device_id="cam-x", source=str(_unplayable(tmp_path, name)), loop=True)
    with pytest.raises(SourceError, match=message):
        DeviceLoop(device=device, featurizer=featurizer, mqtt_url="mqtt://127.0.0.1:1")


def test_a_file_that_vanishes_while_looping_ends_the_device_with_its_error(featurizer, tmp_path):
    """A file is not retried as a camera is: gone at the start of a pass, it is an error."""
    video = _write_video(tmp_path / "clip.avi", frames=3, fps=30)
    device = DeviceSettings(device_id="vanish", source=str(video), loop=True, gating=False)
    loop = DeviceLoop(
        device=device, featurizer=featurizer, mqtt_url=f"mqtt://127.0.0.1:{free_port()}"
    )
    video.unlink()  # after the check, before the capture opens it
    with pytest.raises(SourceError, match="no such file"):
        loop.run()
    assert loop.stats.source_failures == 0


def test_a_stream_being_retried_says_so_in_its_status(featurizer, mosquitto_server, subscribe):
    """A camera or stream that cannot be opened is retried, and the retained status
    (still "online": the device is there) says so, without the stream's password."""
    subscriber = subscribe("edgelens/door/#")
    device = DeviceSettings(
        device_id="door",
        source="rtsp://viewer:s3cret@127.0.0.1:1/live",  # nothing listens on port 1
        status_interval_s=0.05,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.05,
    )
    loop = DeviceLoop(device=device, featurizer=featurizer, mqtt_url=mosquitto_server.url)
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:

        def statuses() -> list[dict]:
            return [json.loads(m.payload) for m in subscriber.messages if "status" in m.topic]

        _wait_until(lambda: any("camera" in s for s in statuses()))
    finally:
        loop.stop.set()
        runner.join(10)
    status = next(s for s in statuses() if "camera" in s)
    assert status["state"] == "online"
    assert status["camera"] == "can't open rtsp://viewer:***@127.0.0.1:1/live: retrying"
    DeviceStatus.model_validate(status)  # what the worker accepts
    assert loop.stats.source_failures >= 1 and loop.stats.captured == 0
    _wait_until(lambda: subscriber.states("door")[-1:] == ["offline"])


def test_device_loop_publishes_one_message_per_frame_and_its_status(
    featurizer, mosquitto_server, subscribe, tmp_path
):
    video = _write_video(tmp_path / "clip.avi", frames=10, fps=10)
    subscriber = subscribe("edgelens/cam-1/#")
    # smoothing and gating off: each frame's own vector must go out (the focus box has its
    # own test)
    device = DeviceSettings(
        device_id="cam-1",
        source=str(video),
        fps_cap=30,
        smoothing_window=1,
        gating=False,
        focus=False,
        send_view=False,
    )
    stats = DeviceLoop(device=device, featurizer=featurizer, mqtt_url=mosquitto_server.url).run()
    _wait_until(lambda: subscriber.states("cam-1")[-1:] == ["offline"])

    messages = subscriber.features("cam-1")
    assert [m.seq for m in messages] == list(range(10))
    assert {(m.device_id, m.model_id, m.dim) for m in messages} == {
        ("cam-1", featurizer.model_id, featurizer.dim)
    }
    assert all(a.captured_at < b.captured_at for a, b in itertools.pairwise(messages))
    # Each vector is the embedding of its own frame (float16 on the wire).
    reader = cv2.VideoCapture(str(video))
    frames = [reader.read()[1] for _ in range(10)]
    expected = featurizer.embed(frames)
    np.testing.assert_allclose(np.stack([m.embedding for m in messages]), expected, atol=2e-3)
    assert all(m.focus_embedding is None and m.view_jpeg is None for m in messages)
    assert stats.focus_ms_mean == 0

    *running, last = subscriber.states("cam-1")  # "online" again with each health refresh
    assert set(running) == {"online"} and last == "offline"
    (online, *_) = (json.loads(m.payload) for m in subscriber.messages if "status" in m.topic)
    assert online["device_id"] == "cam-1" and online["model_id"] == featurizer.model_id
    assert online["provider"] == featurizer.provider and online["ts"] > 0
    assert (stats.captured, stats.featurized, stats.published) == (10, 10, 10)
    assert (stats.dropped, stats.unsent, stats.source_failures) == (0, 0, 0)
    assert stats.featurize_ms_mean > 0 and stats.featurize_ms_last > 0
    assert stats.decode_ms_mean > 0 and stats.preprocess_ms_mean > 0 and stats.publish_ms_mean > 0
    assert stats.suppressed == 0
    # The offline status carries the final health figures for the dashboard.
    *_, offline = (json.loads(m.payload) for m in subscriber.messages if "status" in m.topic)
    assert offline["state"] == "offline" and offline["published"] == 10
    assert offline["featurize_ms"] == round(stats.featurize_ms_mean, 2) and offline["fps"] > 0

    late = subscribe(status_topic("cam-1"))
    _wait_until(lambda: late.messages)
    assert late.messages[0].retain and late.states("cam-1") == ["offline"]


@pytest.mark.parametrize("focus_here", [False, True], ids=["default", "device.focus"])
def test_the_settled_frame_carries_its_focus_view(
    featurizer, mosquitto_server, subscribe, tmp_path, focus_here
):
    """By default one forward pass per frame, and the box as a colour JPEG (which the worker
    featurizes) once, on the frame where the view settled, gating off included; with
    ``device.focus`` the device also sends the box's vector itself, with every frame."""
    video = _write_video(tmp_path / "clip.avi", frames=5, fps=5)
    subscriber = subscribe("edgelens/cam-2/#")
    device = DeviceSettings(
        device_id="cam-2", source=str(video), smoothing_window=1, gating=False, focus=focus_here
    )
    stats = DeviceLoop(device=device, featurizer=featurizer, mqtt_url=mosquitto_server.url).run()
    _wait_until(lambda: subscriber.states("cam-2")[-1:] == ["offline"])
    messages = subscriber.features("cam-2")
    assert stats.published == len(messages) == 5 - stats.dropped and stats.focus_ms_mean > 0
    # the same view all along (only the drawn frame number changes): it settles on the
    # third frame (settle_frames), whose message alone carries the view
    (settled,) = [m for m in messages if m.view_jpeg is not None]
    assert settled is messages[2]
    assert stats.views_sent == 1 and stats.health()["views_sent"] == 1
    reader = cv2.VideoCapture(str(video))
    frames = [reader.read()[1] for _ in range(5)]
    for message in messages:  # each frame with its own vector (and box's)
        frame = frames[message.seq]
        whole, focused = featurizer.embed([frame, focus_crop(frame)])
        np.testing.assert_allclose(message.embedding, whole, atol=2e-3)
        if focus_here:
            np.testing.assert_allclose(message.focus_embedding, focused, atol=2e-3)
        else:
            assert message.focus_embedding is None
    view = decode_focus_view(settled.view_jpeg)  # the box, in colour, JPEG-coded
    box = focus_crop(frames[settled.seq])
    assert view.shape == box.shape and np.abs(view.astype(int) - box).mean() < 8  # JPEG quality 45


def test_looping_device_runs_until_its_stop_event(
    featurizer, mosquitto_server, subscribe, tmp_path
):
    video = _write_video(tmp_path / "short.avi", frames=4, fps=20)
    subscriber = subscribe("edgelens/looper/#")
    device = DeviceSettings(
        device_id="looper", source=str(video), fps_cap=30, loop=True, gating=False
    )
    stop = threading.Event()
    loop = DeviceLoop(
        device=device, featurizer=featurizer, mqtt_url=mosquitto_server.url, stop=stop
    )
    runner = threading.Thread(target=loop.run)
    runner.start()
    _wait_until(lambda: loop.stats.published >= 10)  # past the end of the 4-frame clip twice
    stop.set()
    runner.join(10)
    assert not runner.is_alive()
    seqs = [m.seq for m in subscriber.features("looper")]
    assert seqs == sorted(seqs) and seqs[-1] >= 9
    _wait_until(lambda: subscriber.states("looper")[-1:] == ["offline"])


def test_device_starts_without_a_broker_and_counts_what_it_could_not_send(
    featurizer, monkeypatch, tmp_path, caplog
):
    monkeypatch.setattr("edgelens.device.loop.BROKER_WAIT_S", 0.2)
    for name in ("a.png", "b.png", "c.png"):
        cv2.imwrite(str(tmp_path / name), load_photo("coffee"))
    device = DeviceSettings(device_id="alone", source=str(tmp_path), fps_cap=20, gating=False)
    stats = DeviceLoop(
        device=device, featurizer=featurizer, mqtt_url=f"mqtt://127.0.0.1:{free_port()}"
    ).run()
    assert (stats.captured, stats.featurized, stats.published, stats.unsent) == (3, 3, 0, 3)
    assert "not reachable yet; capturing anyway" in caplog.text
    assert caplog.text.count("holding the newest vector") == 1


def test_publisher_holds_the_newest_vector_while_the_broker_is_away(
    mosquitto_server, subscribe, caplog
):
    caplog.set_level(logging.INFO, logger="edgelens.device")

    def message(seq: int) -> FeatureMessage:
        return FeatureMessage("flaky", seq, time.time(), "model-x", np.ones(16, dtype=np.float32))

    publisher = FeaturePublisher(
        mqtt_url=mosquitto_server.url,
        device_id="flaky",
        model_id="model-x",
        provider="CPUExecutionProvider",
        wire_dtype=WireDtype.INT8,
        reconnect_initial_s=0.1,
        reconnect_max_s=0.2,
    )
    with publisher:
        assert publisher.wait_connected(5)
        assert publisher.publish(message(0))
        mosquitto_server.stop()
        _wait_until(lambda: not publisher.connected)
        assert [publisher.publish(message(seq)) for seq in (1, 2, 3)] == [False] * 3
        assert publisher.unsent == 2, "the older two are dropped, the newest is held"
        assert caplog.text.count("holding the newest vector") == 1  # once per outage

        mosquitto_server.start()
        subscriber = subscribe("edgelens/flaky/#")  # the broker lost its retained messages
        assert publisher.wait_connected(10)
        _wait_until(lambda: subscriber.features("flaky"))
        assert [m.seq for m in subscriber.features("flaky")] == [3], "held vector sent first"
        assert "(2 frame(s) dropped while away, the newest sent now)" in caplog.text
        assert publisher.publish(message(4))
        _wait_until(lambda: len(subscriber.features("flaky")) == 2)
        assert subscriber.states("flaky")[-1] == "online"
    assert publisher.published == 3
    _wait_until(lambda: subscriber.states("flaky")[-1] == "offline")


@pytest.mark.parametrize("swapped", [False, True], ids=["as-started", "after-a-model-swap"])
def test_broker_publishes_the_offline_will_when_a_device_dies(mosquitto_server, subscribe, swapped):
    subscriber = subscribe(status_topic("doomed"))
    code = (
        "import time\n"
        "from edgelens.device.publisher import FeaturePublisher\n"
        "from edgelens.wire.features import WireDtype\n"
        f"p = FeaturePublisher(mqtt_url={mosquitto_server.url!r}, device_id='doomed', "
        "model_id='m', provider='cpu', wire_dtype=WireDtype.FLOAT16, "
        "reconnect_initial_s=0.1, reconnect_max_s=1)\n"
        "p.start()\n"
        "assert p.wait_connected(10)\n"
        + ("p.set_model('m2', 'cpu')\nassert p.wait_connected(10)\n" if swapped else "")
        + "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    device = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    topic = status_topic("doomed")
    try:
        assert device.stdout.readline().strip() == b"up"
        _wait_until(
            lambda: (
                [json.loads(p)["model_id"] for p in subscriber.payloads(topic)][-1:]
                == (["m2"] if swapped else ["m"])
            )
        )
    finally:
        device.kill()
        device.wait()
    _wait_until(lambda: subscriber.states("doomed")[-1:] == ["offline"])
    statuses = [json.loads(p) for p in subscriber.payloads(topic)]
    # the swap renews the connection without a will published on the way
    assert [s["state"] for s in statuses] == ["online"] * (len(statuses) - 1) + ["offline"]
    assert statuses[-1]["model_id"] == ("m2" if swapped else "m"), "the will names the model run"


def test_cli_device_run_on_a_video_exits_0(settings, mosquitto_server, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGELENS_MQTT_URL", mosquitto_server.url)
    video = _write_video(tmp_path / "clip.avi", frames=6, fps=20)
    result = CliRunner().invoke(
        cli_app,
        ["device", "run", "--source", str(video), "--device-id", "cli-cam", "--fps-cap", "30"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "device cli-cam: captured 6, published" in result.output
    assert "featurize" in result.output and "gated" in result.output


@pytest.mark.parametrize(("name", "message"), UNPLAYABLE)
def test_cli_device_run_on_a_file_it_cannot_play_exits_1(settings, tmp_path, name, message):
    path = _unplayable(tmp_path, name)
    result = CliRunner().invoke(cli_app, ["device", "run", "--source", str(path), "--loop"])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())  # the error line wraps at the console's width
    assert "error:" in said and message in said
    assert "Traceback" not in said


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device-id", "no/slashes"], "device_id"),
        (["--fps-cap", "0"], "fps_cap"),
        (["--source", "ftp://cam/stream"], "unknown source"),
    ],
)
def test_cli_device_run_reports_bad_flags(settings, flags, message):
    result = CliRunner().invoke(cli_app, ["device", "run", *flags])
    assert result.exit_code == 1
    assert message in result.output


def test_cli_device_run_loops_until_sigterm_then_goes_offline(
    settings, mosquitto_server, subscribe, monkeypatch, tmp_path
):
    monkeypatch.setenv("EDGELENS_MQTT_URL", mosquitto_server.url)
    monkeypatch.setenv("EDGELENS_DEVICE__GATING", "false")
    video = _write_video(tmp_path / "clip.avi", frames=3, fps=20)
    subscriber = subscribe("edgelens/cli-loop/#")

    def terminate_after_a_loop() -> None:
        # The handler is installed before the device connects, so "online" makes this safe.
        _wait_until(lambda: len(subscriber.features("cli-loop")) > 3)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_a_loop)
    killer.start()
    result = CliRunner().invoke(
        cli_app,
        ["device", "run", "--source", str(video), "--device-id", "cli-loop", "--loop"],
        catch_exceptions=False,
    )
    killer.join()
    assert result.exit_code == 0, result.output
    _wait_until(lambda: subscriber.states("cli-loop")[-1:] == ["offline"])


def test_gated_device_sends_a_still_view_at_the_keepalive_rate_and_a_new_view_at_once(
    featurizer, mosquitto_server, subscribe, tmp_path
):
    """Two still scenes, 1.5 s each: the first frame of each goes out, then the frame on
    which the scene settled, with its focus view (the gate alone would suppress it), then
    only keep-alives, the vector alone."""
    fps = 20
    writer = cv2.VideoWriter(
        str(tmp_path / "still.avi"), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240)
    )
    scenes = [cv2.resize(load_photo(name), (320, 240)) for name in ("coffee", "rocket")]
    for scene in scenes:
        for _ in range(30):
            writer.write(scene)
    writer.release()
    subscriber = subscribe("edgelens/still/#")
    device = DeviceSettings(
        device_id="still",
        source=str(tmp_path / "still.avi"),
        fps_cap=fps,
        gate_cosine=0.95,
        keepalive_s=0.5,
        status_interval_s=0.2,
        focus=True,  # the box's vector too, to show a keep-alive does not redo it
    )
    stats = DeviceLoop(device=device, featurizer=featurizer, mqtt_url=mosquitto_server.url).run()
    _wait_until(lambda: subscriber.states("still")[-1:] == ["offline"])

    messages = subscriber.features("still")
    # A busy machine may drop a frame or two (the loop keeps the newest); all are counted.
    assert stats.featurized + stats.dropped == 60 and stats.published == len(messages)
    assert stats.published + stats.suppressed == stats.featurized
    assert stats.published == 2 + stats.settled + stats.keepalives  # first, changed, …
    # ~1.5 s per scene at one keep-alive per 0.5 s: a handful of messages, not 60.
    assert 2 <= len(messages) <= 10 and stats.keepalives >= 2
    expected = featurizer.embed(scenes)
    scene_of = [int(np.argmax(expected @ m.embedding)) for m in messages]
    assert scene_of == sorted(scene_of) and set(scene_of) == {0, 1}
    first_of_second_scene = next(
        m for m, scene in zip(messages, scene_of, strict=True) if scene == 1
    )
    # sent at once (first frame of the scene the loop took), not at the next keep-alive
    assert 30 <= first_of_second_scene.seq <= 31 + stats.dropped
    # A keep-alive re-sends its view's focus box vector instead of featurizing it again:
    # one focus pass per scene, the same box vector in every message of that scene.
    focus_of = {}
    for message, scene in zip(messages, scene_of, strict=True):
        box = focus_of.setdefault(scene, message.focus_embedding)
        np.testing.assert_array_equal(message.focus_embedding, box)
    assert focus_of[0] @ focus_of[1] < 0.9
    # One focus view per scene: on its second message, the frame where it settled, sent
    # although the gate would suppress it (3 frames at 20 fps, well before the keep-alive).
    with_view = [(i, scene) for i, scene in enumerate(scene_of) if messages[i].view_jpeg]
    assert stats.views_sent == stats.settled == 2
    assert with_view == [(1, 0), (scene_of.index(1) + 1, 1)]
    # the third frame of the scene the loop took
    assert 2 <= messages[1].seq - messages[0].seq <= 2 + stats.dropped
    # Health went out while the device ran, not only at the end.
    online = [
        json.loads(m.payload)
        for m in subscriber.messages
        if "status" in m.topic and json.loads(m.payload)["state"] == "online"
    ]
    assert any(status.get("suppressed", 0) > 0 for status in online)
