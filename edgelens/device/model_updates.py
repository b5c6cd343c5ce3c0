"""A device follows the fleet's model rollout without a restart.

The worker offers a model to every device as a retained :class:`ModelOffer` on
:data:`FLEET_MODEL_TOPIC`; an admin may offer one device a model of its own on
``edgelens/<device_id>/model``, which wins while it is there (an empty retained message
takes it back, and the fleet's counts again). Both arrive on the device's own MQTT
connection, at every (re)connect too, being retained.

For an offer of another model than the one running, :class:`ModelUpdates` downloads
``/models/<id>/manifest`` and ``/models/<id>/onnx`` from ``device.model_server_url``,
signing in with the device's broker account (HTTP Basic), refuses oversized answers,
checks that the manifest is the offered model's and the file has the manifest's sha256,
moves both into ``<data_dir>/models/offered/<id>/`` in one rename, loads and warms the
model up with the device's providers and threads, and hands it to the loop, which swaps
it in between two frames. Whatever goes wrong leaves the device on the model it runs,
and its status says why in ``model_problem`` until it runs the offered model.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import logging
import os
import re
import shutil
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from edgelens.device.loop import DeviceLoop, warm_up
from edgelens.device.publisher import Listener
from edgelens.errors import ConfigError, ModelError, RejectedMessage
from edgelens.featurizer.manifest import ModelManifest
from edgelens.featurizer.runtime import Featurizer
from edgelens.lifecycle import Lifecycle
from edgelens.settings import Settings
from edgelens.wire.names import FLEET_MODEL_TOPIC, model_topic
from edgelens.wire.rollout import ModelOffer

logger = logging.getLogger(__name__)

# Where offered models are kept, under the data dir: one folder per model id.
OFFERED_DIR = Path("models") / "offered"
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
# The most the model server may send: a manifest is under 1 KB, EfficientNet-Lite0 in
# FP32 about 19 MB.
MAX_MANIFEST_BYTES = 64 * 1024
MAX_ONNX_BYTES = 256 * 1024 * 1024
# Each connect and each read of a download waits at most this long.
HTTP_TIMEOUT_S = 30.0
CHUNK_BYTES = 1024 * 1024
# A download that failed for a passing reason (server unreachable, 5xx, broken off) is
# tried again after this long, doubling up to the most; other failures wait for a new offer.
RETRY_INITIAL_S = 30.0
RETRY_MAX_S = 600.0
# How often the thread looks at its stop event while no offer comes.
POLL_S = 0.2
# How long stopping waits for the thread (a download stops at its next chunk).
JOIN_S = 10.0
# A model id names a folder here: letters, digits and a few separators only.
_FOLDER_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}\Z")
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")

# Builds a featurizer for a manifest and its ONNX file (the device's providers and threads).
FeaturizerLoader = Callable[[ModelManifest, Path], Featurizer]


class ModelTarget(Protocol):
    """What the updates drive: the device loop (:class:`edgelens.device.loop.DeviceLoop`)."""

    @property
    def model_id(self) -> str: ...

    def swap_featurizer(self, featurizer: Featurizer) -> None: ...

    def set_model_problem(self, problem: str | None) -> None: ...

    def listen(self, topics: Sequence[str], listener: Listener) -> None: ...


@dataclass(frozen=True)
class _Retry:
    offer: ModelOffer
    due: float  # monotonic
    delay_s: float


class _NewestOffer:
    """A queue of one: the offer that counts now (None: no offer at all), replacing the
    one waiting for the thread, which is no longer true."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._waiting: list[ModelOffer | None] = []  # at most one

    def put(self, offer: ModelOffer | None) -> None:
        with self._ready:
            self._waiting[:] = [offer]
            self._ready.notify()

    def take(self, timeout: float) -> tuple[bool, ModelOffer | None]:
        """(True, the offer) if one came within ``timeout`` seconds, else (False, None)."""
        with self._ready:
            if not self._waiting:
                self._ready.wait(timeout)
            if not self._waiting:
                return False, None
            return True, self._waiting.pop()

    def waiting(self) -> bool:
        with self._ready:
            return bool(self._waiting)


class ModelUpdates(Lifecycle):
    """Listens for model offers on the device's MQTT connection and switches the loop to
    the offered model: a thread of its own that :meth:`start` starts and :meth:`close`
    stops (also as a context manager around the loop's run).

    ``server_url`` None turns rollouts off: offers are heard, said once in the log and
    in the status, and otherwise ignored.
    """

    def __init__(
        self,
        *,
        target: ModelTarget,
        device_id: str,
        server_url: str | None,
        mqtt_url: str,
        folder: Path,
        load: FeaturizerLoader,
        ca_file: Path | None = None,
    ) -> None:
        self._target = target
        self._own_topic = model_topic(device_id)
        self._server_url = server_url.rstrip("/") if server_url else None
        self._folder = folder
        self._load = load
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)
        self._offers = _NewestOffer()
        self._lock = threading.Lock()
        # The newest offer heard on each topic (None: none, or taken back).
        self._heard: dict[str, ModelOffer | None] = {self._own_topic: None, FLEET_MODEL_TOPIC: None}
        self._wanted: ModelOffer | None = None  # the offer that counts, as last queued
        self._retry: _Retry | None = None
        self._said_off = False
        self.handled = 0  # offers the thread has finished with, whatever came of them
        self.switched = 0  # models handed to the loop
        self.failed = 0
        self.downloads = 0  # models fetched from the server (a checked copy on disk is none)
        self._auth = _basic_auth(mqtt_url)
        self._opener = _opener(ca_file) if self._server_url else None

    @classmethod
    def for_loop(cls, loop: DeviceLoop, settings: Settings) -> ModelUpdates:
        """The updates of ``loop`` (its device id and ``model_server_url``) run with these
        settings: its broker account, its data dir, and the featurizer's providers and
        threads for the models it gets."""
        cfg = settings.featurizer
        return cls(
            target=loop,
            device_id=loop.device.device_id,
            server_url=loop.device.model_server_url,
            mqtt_url=str(settings.mqtt_url),
            folder=settings.data_dir / OFFERED_DIR,
            ca_file=settings.mqtt_tls.ca_file,
            load=functools.partial(
                Featurizer,
                providers=cfg.providers,
                threads=cfg.threads,
                batch_size=cfg.batch_size,
                cache_dir=settings.data_dir / "trt-cache",
            ),
        )

    def start(self) -> None:
        """Subscribe to the two offer topics (this device's first: its retained offer then
        arrives before the fleet's) and start the thread; before the loop runs."""
        self._target.listen([self._own_topic, FLEET_MODEL_TOPIC], self.hear)
        _remove_leftovers(self._folder)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_S)

    def hear(self, topic: str, payload: bytes, retained: bool) -> None:
        """An offer from the broker (paho's network thread: it only queues). The offer
        that counts is this device's own, else the fleet's; it is queued when it changed,
        or when it was sent again live (offered once more: try again)."""
        if topic not in self._heard:
            return
        offer: ModelOffer | None = None
        if payload:  # empty: the retained offer was taken back
            try:
                offer = ModelOffer.from_json(payload)
            except RejectedMessage as exc:
                logger.warning("model offer on %s ignored: %s", topic, exc)
                return
        with self._lock:
            self._heard[topic] = offer
            own = self._heard[self._own_topic]
            wanted = own or self._heard[FLEET_MODEL_TOPIC]
            changed = wanted != self._wanted
            self._wanted = wanted
        if changed or (not retained and offer is not None and offer == wanted):
            if wanted is not None:
                whose = "to this device" if own is not None else "to the fleet"
                logger.info("model %s offered %s", wanted.model_id, whose)
            self._offers.put(wanted)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                taken, offer = self._offers.take(POLL_S)
                if taken:
                    self._retry = None  # a newer word than the offer it was for
                elif (offer := self._retry_due()) is None:
                    continue
                try:
                    self._handle(offer)
                except Exception:  # the thread must outlive any one offer
                    logger.exception("model offer %s not handled", offer)
                    self._target.set_model_problem(
                        "can't run the offered model: unexpected error (see the device's log)"
                    )
                self.handled += 1
        finally:
            logger.info(
                "model updates stopped: %d offer(s), %d switch(es), %d failed, %d download(s)",
                self.handled,
                self.switched,
                self.failed,
                self.downloads,
            )

    def _retry_due(self) -> ModelOffer | None:
        retry = self._retry
        if retry is None or time.monotonic() < retry.due:
            return None
        return retry.offer

    def _handle(self, offer: ModelOffer | None) -> None:
        retry, self._retry = self._retry, None
        if offer is None:  # every offer taken back: nothing to switch to, nothing amiss
            logger.info("no model offered any more; the device keeps %s", self._target.model_id)
            self._target.set_model_problem(None)
            return
        if offer.model_id == self._target.model_id:
            self._target.set_model_problem(None)  # it runs what it was offered
            return
        if self._server_url is None:
            if not self._said_off:
                logger.warning(
                    "model %s offered, but model rollouts are off on this device "
                    "(device.model_server_url is not set): it keeps %s",
                    offer.model_id,
                    self._target.model_id,
                )
                self._said_off = True
            self._target.set_model_problem(
                f"offered {offer.model_id}, but model rollouts are off on this device "
                "(device.model_server_url is not set)"
            )
            return
        try:
            featurizer = self._prepare(offer)
        except ModelError as exc:
            if self._stop.is_set():
                return
            self.failed += 1
            if _passing(exc):
                again = retry is not None and retry.offer == offer
                delay = min(retry.delay_s * 2, RETRY_MAX_S) if again else RETRY_INITIAL_S
                self._retry = _Retry(offer, time.monotonic() + delay, delay)
            logger.warning(
                "device keeps %s: can't run %s: %s%s",
                self._target.model_id,
                offer.model_id,
                exc,
                f" (trying again in {self._retry.delay_s:.0f} s)" if self._retry else "",
            )
            self._target.set_model_problem(f"can't run {offer.model_id}: {exc}")
            return
        if featurizer is None or self._offers.waiting():
            logger.info("model %s left: a newer offer came meanwhile", offer.model_id)
            return
        self._target.swap_featurizer(featurizer)
        self._target.set_model_problem(None)
        self.switched += 1
        _remove_leftovers(self._folder, keep=offer.model_id)

    def _prepare(self, offer: ModelOffer) -> Featurizer | None:
        """The offered model, checked, on disk, loaded and warmed up; None if a newer offer
        came during its download; ModelError, in plain words, when it cannot be had."""
        if not _FOLDER_NAME.match(offer.model_id):
            raise ModelError("its id is not a usable folder name")
        folder = self._folder / offer.model_id
        manifest = _checked_copy(folder, offer)
        if manifest is not None:
            logger.info("model %s: a checked copy is already in %s", offer.model_id, folder)
        elif (manifest := self._download(offer, folder)) is None:
            return None
        try:
            featurizer = self._load(manifest, folder / ONNX_FILE)
            warmed_ms = warm_up(featurizer)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            logger.warning("model %s does not load: %s", offer.model_id, exc)
            shutil.rmtree(folder, ignore_errors=True)  # a copy that does not run is no copy
            raise ModelError("the ONNX file does not load (see the device's log)") from exc
        logger.info(
            "model %s loaded on %s and warmed up in %.0f ms",
            offer.model_id,
            featurizer.provider,
            warmed_ms,
        )
        return featurizer

    def _download(self, offer: ModelOffer, folder: Path) -> ModelManifest | None:
        """Fetch the manifest and the ONNX file into a staging folder, check them, and
        rename it to ``folder``: a half-written model never has the model's name. None
        when a newer offer came after the manifest (the large file is not fetched)."""
        assert self._server_url is not None
        base = f"{self._server_url}/models/{quote(offer.model_id, safe='')}"
        started = time.monotonic()
        self._folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self._folder, prefix=f".{offer.model_id}."))
        try:
            manifest_path = staging / MANIFEST_FILE
            with manifest_path.open("wb") as out:
                self._get(f"{base}/manifest", MAX_MANIFEST_BYTES, "the manifest", out.write)
            manifest = _read_manifest(manifest_path, offer)
            if self._offers.waiting():
                return None
            digest = hashlib.sha256()
            with (staging / ONNX_FILE).open("wb") as onnx_file:

                def write(chunk: bytes) -> None:
                    digest.update(chunk)
                    onnx_file.write(chunk)

                size = self._get(f"{base}/onnx", MAX_ONNX_BYTES, "the ONNX file", write)
                onnx_file.flush()
                os.fsync(onnx_file.fileno())  # on disk before it takes the model's name
            if digest.hexdigest() != manifest.onnx_sha256:
                raise ModelError(
                    "download failed: sha256 of the ONNX file differs from the manifest"
                )
            if folder.exists():
                shutil.rmtree(folder)
            staging.replace(folder)
        except OSError as exc:
            raise ModelError(
                f"can't write the model to {self._folder}: {exc.strerror or exc}"
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.downloads += 1
        logger.info(
            "model %s downloaded (%.1f MB in %.1f s), sha256 checked",
            offer.model_id,
            size / 1e6,
            time.monotonic() - started,
        )
        return manifest

    def _get(self, url: str, limit: int, what: str, write: Callable[[bytes], object]) -> int:
        """GET ``url`` with the device's credentials, handing the body to ``write`` chunk by
        chunk; returns its size. ModelError in plain words when the server does not give
        it, or gives more than ``limit`` bytes."""
        assert self._opener is not None
        request = urllib.request.Request(url, headers={"Authorization": self._auth})
        try:
            with self._opener.open(request, timeout=HTTP_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > limit:
                    raise ModelError(_too_big(what, limit))
                received = 0
                while chunk := response.read(CHUNK_BYTES):
                    received += len(chunk)
                    if received > limit:
                        raise ModelError(_too_big(what, limit))
                    if self._stop.is_set():
                        raise ModelError("the device is stopping")
                    try:
                        write(chunk)
                    except OSError as exc:  # not the network's fault: the disk's
                        raise ModelError(f"can't write the model: {exc.strerror or exc}") from exc
                return received
        except urllib.error.HTTPError as exc:
            exc.close()
            raise ModelError(f"download failed: {_http_words(exc.code)}") from exc
        except urllib.error.URLError as exc:
            raise ModelError(
                f"download failed: can't reach the model server ({exc.reason})"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:  # timeouts, a dropped connection
            raise ModelError(
                f"download failed: it broke off ({exc or type(exc).__name__})"
            ) from exc


def _passing(exc: ModelError) -> bool:
    """Whether a failure may go away by itself: the server unreachable or overloaded, a
    download broken off, a full disk; not a refusal, a missing model, or a wrong one."""
    cause = exc.__cause__
    if isinstance(cause, urllib.error.HTTPError):
        return cause.code >= 500 or cause.code == 429
    return isinstance(cause, OSError | http.client.HTTPException)


def _http_words(code: int) -> str:
    if code == 401:
        return "the model server refused the device's credentials (HTTP 401)"
    if code == 403:
        return "the model server does not let this device have it (HTTP 403)"
    if code == 404:
        return "the model server does not have it (HTTP 404)"
    if 300 <= code < 400:
        return f"the model server sent it elsewhere (HTTP {code}); redirects are not followed"
    return f"the model server answered HTTP {code}"


def _too_big(what: str, limit: int) -> str:
    return f"download refused: {what} is larger than {limit / 1e6:.1f} MB"


def _read_manifest(path: Path, offer: ModelOffer) -> ModelManifest:
    try:
        manifest = ModelManifest.load(path)
    except ModelError as exc:
        logger.warning("model %s: %s", offer.model_id, exc)
        raise ModelError("download failed: the manifest is not a model manifest") from exc
    if manifest.model_id != offer.model_id:
        raise ModelError(
            f"download failed: the manifest is for another model ({manifest.model_id})"
        )
    if not _SHA256.match(manifest.onnx_sha256):
        raise ModelError("download failed: the manifest has no valid sha256")
    return manifest


def _checked_copy(folder: Path, offer: ModelOffer) -> ModelManifest | None:
    """The manifest of an earlier download of the offered model in ``folder``, if it is
    whole and its ONNX file still has the manifest's sha256 (a restart downloads nothing)."""
    manifest_path, onnx_path = folder / MANIFEST_FILE, folder / ONNX_FILE
    if not (manifest_path.is_file() and onnx_path.is_file()):
        return None
    try:
        manifest = ModelManifest.load(manifest_path)
        digest = hashlib.sha256()
        with onnx_path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                digest.update(chunk)
    except (ModelError, OSError):
        return None
    if manifest.model_id != offer.model_id or digest.hexdigest() != manifest.onnx_sha256:
        return None
    return manifest


def _remove_leftovers(folder: Path, keep: str | None = None) -> None:
    """Staging folders of interrupted downloads and, given ``keep``, every other offered
    model: a device keeps the one it switched to (its own model stays where it was)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name != keep and (keep is not None or entry.name.startswith(".")):
            shutil.rmtree(entry, ignore_errors=True)


def _basic_auth(mqtt_url: str) -> str:
    """The HTTP Basic header for the broker account in ``mqtt_url`` (none: no user)."""
    url = urlsplit(mqtt_url)
    user, password = unquote(url.username or ""), unquote(url.password or "")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _opener(ca_file: Path | None) -> urllib.request.OpenerDirector:
    """HTTP(S) that trusts the system's CAs and ``ca_file``, and follows no redirect (it
    would carry the device's credentials to wherever the answer points)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(f"cannot read the CA file {ca_file}: {exc}") from exc
    return urllib.request.build_opener(_NoRedirects(), urllib.request.HTTPSHandler(context=context))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None
