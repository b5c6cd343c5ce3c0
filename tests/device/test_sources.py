"""Source URIs as a user writes them, and the folder source."""

import cv2
import pytest

from edgelens.device.sources import (
    ImageFolderSource,
    VideoCaptureSource,
    check_source,
    open_source,
    parse_source,
)
from edgelens.errors import SourceError
from edgelens.samples.photos import load_photo


@pytest.mark.parametrize(
    ("uri", "kind", "target", "backend"),
    [
        ("0", "usb", 0, cv2.CAP_ANY),
        ("2", "usb", 2, cv2.CAP_ANY),
        ("v4l2:///dev/video1", "usb", "/dev/video1", cv2.CAP_V4L2),
        ("rtsp://cam.local:8554/live", "rtsp", "rtsp://cam.local:8554/live", cv2.CAP_FFMPEG),
        ("file:///no/such/clip.mp4", "file", "/no/such/clip.mp4", cv2.CAP_ANY),
        ("file://clip%20one.avi", "file", "clip one.avi", cv2.CAP_ANY),
        ("/no/such/clip.mp4", "file", "/no/such/clip.mp4", cv2.CAP_ANY),
    ],
)
def test_parse_cameras_streams_and_files(uri, kind, target, backend):
    spec = parse_source(uri, gstreamer=False, jetson=False)
    assert (spec.kind, spec.target, spec.backend, spec.uri) == (kind, target, backend, uri)
    assert spec.recorded == (kind == "file")


def test_parse_folder_by_path_and_by_file_uri(tmp_path):
    for uri in (str(tmp_path), f"file://{tmp_path}"):
        spec = parse_source(uri)
        assert (spec.kind, spec.target, spec.recorded) == ("folder", str(tmp_path), True)


def test_parse_csi_builds_an_nvargus_pipeline():
    spec = parse_source("csi://1", gstreamer=True)
    assert spec.kind == "csi" and spec.backend == cv2.CAP_GSTREAMER
    pipeline = str(spec.target)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM)")
    assert "nvvidconv" in pipeline
    assert pipeline.endswith("appsink drop=true max-buffers=1 sync=false")
    assert "format=(string)BGR !" in pipeline


def test_parse_rtsp_on_a_jetson_decodes_in_hardware():
    url = "rtsp://user:pw@10.0.0.5:554/stream1"
    spec = parse_source(url, gstreamer=True, jetson=True)
    assert spec.kind == "rtsp" and spec.backend == cv2.CAP_GSTREAMER
    pipeline = str(spec.target)
    assert pipeline.startswith(f'rtspsrc location="{url}" latency=')
    assert "rtph264depay ! h264parse ! nvv4l2decoder" in pipeline
    assert pipeline.endswith("appsink drop=true max-buffers=1 sync=false")
    # GStreamer without a Jetson decoder: FFmpeg gets the URL itself.
    assert parse_source(url, gstreamer=True, jetson=False).target == url


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "no source"),
        ("csi://0", "GStreamer"),
        ("csi://left", "sensor number"),
        ("v4l2://video0", "device node"),
        ("http://cam/stream.mjpg", "unknown source"),
        ('rtsp://cam/"x', "quotes"),
    ],
)
def test_parse_refuses_what_it_cannot_open(uri, message):
    with pytest.raises(SourceError, match=message):
        parse_source(uri, gstreamer=uri.startswith("rtsp"), jetson=True)


def test_missing_video_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        VideoCaptureSource(parse_source(str(tmp_path / "late.avi")), fallback_fps=10)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.mp4", None, "no such file"),
        ("notanimage.jpg", b"hello, not a JPEG\n", "cannot decode"),
        ("notavideo.mp4", b"not an MP4 either", "not a video or image"),
    ],
)
def test_file_that_gives_no_frame_fails_the_check(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        check_source(parse_source(str(path)), fps_cap=10)


def test_one_image_file_is_one_frame(tmp_path):
    path = tmp_path / "rocket.jpg"
    cv2.imwrite(str(path), load_photo("rocket"))
    check_source(parse_source(str(path)), fps_cap=10)
    source = open_source(parse_source(str(path)), fps_cap=10)
    assert source.read().shape == load_photo("rocket").shape
    assert source.read() is None  # ended, after its one frame: not an error


def test_check_does_not_open_cameras_or_streams():
    for uri in ("rtsp://127.0.0.1:1/nothing", "v4l2:///dev/video99"):
        check_source(parse_source(uri, gstreamer=False), fps_cap=10)  # retried later, not here


def test_unreachable_stream_is_a_source_error():
    spec = parse_source("rtsp://127.0.0.1:1/nothing", gstreamer=False)
    with pytest.raises(SourceError, match="cannot open rtsp://"):
        VideoCaptureSource(spec, fallback_fps=10)


def test_folder_reads_images_in_name_order_and_skips_broken_ones(tmp_path, caplog):
    coffee, rocket = load_photo("coffee"), load_photo("rocket")
    cv2.imwrite(str(tmp_path / "b.png"), rocket)
    cv2.imwrite(str(tmp_path / "a.jpg"), coffee)
    (tmp_path / "c.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    source = open_source(parse_source(str(tmp_path)), fps_cap=4)
    assert isinstance(source, ImageFolderSource)
    assert source.interval_s == pytest.approx(0.25)
    first, second = source.read(), source.read()
    assert first.shape == coffee.shape and second.shape == rocket.shape
    assert source.read() is None
    assert "c.png" in caplog.text


def test_folder_says_each_broken_image_once_across_passes(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / "a.png"), load_photo("coffee"))
    (tmp_path / "b.png").write_bytes(b"not an image")
    unreadable: set = set()
    for _ in range(3):  # three passes of a looping folder
        source = open_source(parse_source(str(tmp_path)), fps_cap=10, unreadable=unreadable)
        assert source.read() is not None and source.read() is None
    assert unreadable == {tmp_path / "b.png"}
    assert caplog.text.count("b.png") == 1


def test_folder_of_broken_images_is_a_source_error(tmp_path):
    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    with pytest.raises(SourceError, match="none of the images"):
        check_source(parse_source(str(tmp_path)), fps_cap=10)


def test_empty_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(tmp_path, fps=10)
