"""Where frames come from, named by URI in the style of jetson-utils.

==========================  ====================================================
``0``, ``1``, …             USB camera by index
``v4l2:///dev/video0``      USB camera by device node (V4L2)
``csi://0``                 Jetson CSI camera through ``nvarguscamerasrc`` (GStreamer)
``rtsp://host/path``        network camera: hardware decoding on a Jetson whose
                            OpenCV has GStreamer, else OpenCV's FFmpeg backend
``file:///clip.mp4``, path  a recorded video, played at its own frame rate
a folder                    its images in name order, played at the FPS cap
==========================  ====================================================

Cameras pace themselves and run until they fail, and are retried: an unplugged
camera or a dropped stream usually comes back. Recorded sources (files and folders)
are paced by the capture thread and end; one that is missing or yields no frame is
an error, since waiting would not make it decodable.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote

import cv2
import numpy as np

from edgelens.errors import ImageDecodeError, SourceError
from edgelens.featurizer.preprocess import IMAGE_SUFFIXES, decode_image

logger = logging.getLogger(__name__)

SourceKind = Literal["usb", "csi", "rtsp", "file", "folder"]

# The CSI sensor mode asked of nvarguscamerasrc; the featurizer shrinks to 224 px anyway.
CSI_WIDTH, CSI_HEIGHT, CSI_FPS = 1280, 720, 30
# rtspsrc's jitter buffer; its 2 s default would put every match 2 s behind the scene.
RTSP_LATENCY_MS = 200
# Both pipelines end in an appsink that keeps one buffer and drops the rest: the
# latest-frame rule starts inside GStreamer, before OpenCV sees a frame.
_APPSINK = (
    "video/x-raw, format=(string)BGRx ! videoconvert ! video/x-raw, format=(string)BGR ! "
    "appsink drop=true max-buffers=1 sync=false"
)
_JETSON_MARKER = Path("/etc/nv_tegra_release")
# FFmpeg otherwise waits 30 s on a dead stream before a read fails and reconnecting starts.
_STREAM_TIMEOUTS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source URI: what ``cv2.VideoCapture`` (or the folder reader) opens, and how."""

    kind: SourceKind
    uri: str  # as the user wrote it, for log lines
    target: int | str  # camera index, device node, URL, GStreamer pipeline, or path
    backend: int = cv2.CAP_ANY  # cv2.CAP_* API preference

    @property
    def recorded(self) -> bool:
        """Files and folders end and are paced by the capture; cameras pace themselves."""
        return self.kind in ("file", "folder")


class FrameSource(Protocol):
    """An opened source, read by one capture thread."""

    interval_s: float | None  # seconds between frames of a recorded source; None for cameras

    def read(self) -> np.ndarray | None:
        """The next HxWx3 uint8 BGR image; None once a recorded source has ended.

        Raises :class:`SourceError` when a camera or stream stops delivering, or when a
        recorded source ends without a single frame (not a video or image).
        """
        ...

    def close(self) -> None: ...


def parse_source(
    uri: str, *, gstreamer: bool | None = None, jetson: bool | None = None
) -> SourceSpec:
    """Parse a source URI; ``gstreamer`` and ``jetson`` default to what this machine has."""
    text = uri.strip()
    if text.isdigit():
        return SourceSpec("usb", uri, int(text))
    scheme, separator, rest = text.partition("://")
    if not separator:
        if not text:
            raise SourceError("no source given")
        return _local_source(uri, Path(text))
    scheme = scheme.lower()
    gstreamer = opencv_has_gstreamer() if gstreamer is None else gstreamer
    if scheme == "v4l2":
        if not re.fullmatch(r"/dev/video\d+", rest):
            raise SourceError(f"v4l2:// names a device node such as /dev/video0, got {uri!r}")
        return SourceSpec("usb", uri, rest, cv2.CAP_V4L2)
    if scheme == "csi":
        if not rest.isdigit():
            raise SourceError(f"csi:// takes a sensor number such as csi://0, got {uri!r}")
        if not gstreamer:
            raise SourceError(f"{uri} needs OpenCV built with GStreamer (JetPack's OpenCV is)")
        return SourceSpec("csi", uri, csi_pipeline(int(rest)), cv2.CAP_GSTREAMER)
    if scheme in ("rtsp", "rtsps"):
        jetson = _JETSON_MARKER.exists() if jetson is None else jetson
        if gstreamer and jetson:
            return SourceSpec("rtsp", uri, rtsp_pipeline(text), cv2.CAP_GSTREAMER)
        return SourceSpec("rtsp", uri, text, cv2.CAP_FFMPEG)
    if scheme == "file":
        return _local_source(uri, Path(unquote(rest)))
    raise SourceError(
        f"unknown source {uri!r}: use 0, v4l2:///dev/videoN, csi://N, rtsp://…, "
        "file://… or a path, or a folder of images"
    )


def csi_pipeline(sensor_id: int) -> str:
    """GStreamer pipeline for a Jetson CSI camera: ISP output converted to BGR in hardware."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){CSI_WIDTH}, height=(int){CSI_HEIGHT}, "
        f"framerate=(fraction){CSI_FPS}/1, format=(string)NV12 ! nvvidconv ! {_APPSINK}"
    )


def rtsp_pipeline(url: str) -> str:
    """GStreamer pipeline decoding an H.264 RTSP stream on the Jetson's NVDEC."""
    if '"' in url:
        raise SourceError(f"RTSP URL must not contain quotes: {url!r}")
    return (
        f'rtspsrc location="{url}" latency={RTSP_LATENCY_MS} ! rtph264depay ! h264parse ! '
        f"nvv4l2decoder ! nvvidconv ! {_APPSINK}"
    )


@functools.cache
def opencv_has_gstreamer() -> bool:
    build = cv2.getBuildInformation()
    return bool(re.search(r"^\s*GStreamer:\s*YES", build, flags=re.MULTILINE))


def open_source(
    spec: SourceSpec, *, fps_cap: float, unreadable: set[Path] | None = None
) -> FrameSource:
    """Open a parsed source; ``fps_cap`` paces folders and videos that do not state a rate.
    ``unreadable`` (shared between opens) lets a looping folder skip, unsaid, the images
    it already reported as undecodable."""
    if spec.kind == "folder":
        return ImageFolderSource(Path(str(spec.target)), fps=fps_cap, unreadable=unreadable)
    return VideoCaptureSource(spec, fallback_fps=fps_cap)


def check_source(spec: SourceSpec, *, fps_cap: float, unreadable: set[Path] | None = None) -> None:
    """Fail now if a file or folder gives no frame (missing, not a video or image), before
    the model warms up and the broker is dialled; cameras and streams are not opened."""
    if not spec.recorded:
        return
    source = open_source(spec, fps_cap=fps_cap, unreadable=unreadable)
    try:
        source.read()
    finally:
        source.close()


class VideoCaptureSource:
    """Cameras, streams and video files through ``cv2.VideoCapture``."""

    def __init__(self, spec: SourceSpec, *, fallback_fps: float) -> None:
        if spec.kind == "file" and not Path(str(spec.target)).is_file():
            raise SourceError(f"no such file: {spec.target}")
        params = _STREAM_TIMEOUTS if spec.kind == "rtsp" and spec.backend == cv2.CAP_FFMPEG else []
        try:
            capture = cv2.VideoCapture(spec.target, spec.backend, params)
        except cv2.error as exc:
            raise SourceError(f"cannot open {spec.uri}: {exc}") from exc
        if not capture.isOpened():
            capture.release()
            why = ": not a video or image OpenCV can decode" if spec.recorded else ""
            raise SourceError(f"cannot open {spec.uri}{why}")
        self._capture = capture
        self._spec = spec
        self._delivered = 0
        self.interval_s = (
            1.0 / _stated_fps(capture, fallback_fps, spec.uri) if spec.kind == "file" else None
        )

    def read(self) -> np.ndarray | None:
        try:
            ok, image = self._capture.read()
        except cv2.error as exc:
            raise SourceError(f"reading {self._spec.uri} failed: {exc}") from exc
        if ok and image is not None:
            self._delivered += 1
            return image
        if self._spec.recorded:  # OpenCV reports the end of a file as a failed read
            if not self._delivered:
                raise SourceError(
                    f"cannot decode {self._spec.uri}: no frame (not a video or image?)"
                )
            return None
        raise SourceError(f"{self._spec.uri} delivered no frame (unplugged or stream dropped?)")

    def close(self) -> None:
        self._capture.release()


class ImageFolderSource:
    """The images of one folder (not its subfolders) in name order; undecodable ones are
    skipped, said once (each is added to ``unreadable``), and a folder with none that
    decodes is an error."""

    def __init__(self, folder: Path, *, fps: float, unreadable: set[Path] | None = None) -> None:
        self._unreadable = unreadable if unreadable is not None else set()
        try:
            listed = [
                p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            ]
        except OSError as exc:
            raise SourceError(f"cannot list {folder}: {exc.strerror or exc}") from exc
        if not listed:
            raise SourceError(f"no images in {folder}")
        self._paths = sorted(p for p in listed if p not in self._unreadable)
        if not self._paths:
            raise SourceError(f"none of the images in {folder} can be decoded")
        self._folder = folder
        self._next = 0
        self._delivered = 0
        self.interval_s: float | None = 1.0 / fps

    def read(self) -> np.ndarray | None:
        while self._next < len(self._paths):
            path = self._paths[self._next]
            self._next += 1
            try:
                image = decode_image(path)
            except ImageDecodeError as exc:
                self._unreadable.add(path)
                logger.warning("skipping %s", exc)
                continue
            self._delivered += 1
            return image
        if not self._delivered:
            raise SourceError(f"none of the images in {self._folder} can be decoded")
        return None

    def close(self) -> None:
        """Nothing is held open between reads."""


def _local_source(uri: str, path: Path) -> SourceSpec:
    # A path that does not exist is taken as a video file, which then fails to open.
    return SourceSpec("folder" if path.is_dir() else "file", uri, str(path))


def _stated_fps(capture: cv2.VideoCapture, fallback: float, uri: str) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    if math.isfinite(fps) and 0 < fps <= 240:
        return float(fps)
    logger.warning("%s states no frame rate (%r); playing it at %.1f fps", uri, fps, fallback)
    return fallback
