"""``edgelens demo``: every part of the product on one machine, started and stopped together.

Order of start: redis-server and mosquitto (private, free loopback ports) → the
demo catalog (cached, so a second start featurizes nothing) → the camera video →
worker → web app → device. Stop runs in reverse, each part logging its exit.
Everything the demo keeps lives in ``<data_dir>/demo``, its own catalog included:
the catalog that ``edgelens catalog add`` fills is never touched.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from pydantic import AnyUrl, SecretStr

from edgelens.broker.accounts import BrokerAccounts
from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.ingest import add_items
from edgelens.catalog.models import IngestReport
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.worker import Worker
from edgelens.demo.servers import MosquittoServer, RedisServer, free_port
from edgelens.demo.video import render_camera_video
from edgelens.device.loop import DeviceLoop
from edgelens.device.model_updates import ModelUpdates
from edgelens.errors import ServerError
from edgelens.featurizer.runtime import Featurizer, load_featurizer
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo, write_sample_catalog
from edgelens.settings import Settings, redact_urls
from edgelens.webapp.app import create_app
from edgelens.webapp.services.accounts import AccountStore, accounts_path

logger = logging.getLogger(__name__)

DEMO_ITEMS = ("coffee", "chelsea", "rocket", "motorcycle", "astronaut", "clock", "coins")
DEMO_ADMIN = "demo"
DEMO_WORKER = "demo-worker"  # the worker's broker account
# How long start-up waits for the device's first frame before it says it is ready anyway
# (a camera given with --source may be slow to open, or absent and being retried).
FIRST_FRAME_WAIT_S = 20.0


@dataclass(frozen=True)
class DemoReady:
    """What the demo's start-up banner shows: where to look and how to sign in."""

    url: str  # the demo device's dashboard page
    username: str
    password: str
    waiting_for: str | None = None  # a --source camera that has given no frame yet
    network_url: str | None = None  # the page from other machines, listening on every address


def demo_settings(settings: Settings) -> Settings:
    """The demo's own data dir (``<data_dir>/demo``: catalog, images, accounts, helper
    servers, its log), with the models where they are; a session key of its own when none
    is set, as sign-ins end with the demo anyway (its admin password is new at every start);
    one featurizer thread unless ``featurizer.threads`` is set: the device shares this
    machine with the worker, and busy-waiting threads take the CPU its answers need
    (docs/device.md)."""
    web = settings.web
    if web.secret_key is None and web.secret_key_file is None:
        web = web.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(32))})
    featurizer = settings.featurizer
    if "threads" not in featurizer.model_fields_set:
        featurizer = featurizer.model_copy(update={"threads": 1})
    return settings.model_copy(
        update={
            "data_dir": demo_dir(settings),
            "models_dir": settings.model_path,
            "web": web,
            "featurizer": featurizer,
        }
    )


def demo_dir(settings: Settings) -> Path:
    """The demo's own data dir: ``<data_dir>/demo``."""
    return settings.data_dir / "demo"


def demo_log_file(settings: Settings) -> Path:
    """Where ``edgelens demo`` keeps its log lines (the console shows its banner)."""
    return demo_dir(settings) / "demo.log"


def run_demo(
    settings: Settings,
    *,
    stop: threading.Event,
    source: str | None = None,
    on_ready: Callable[[DemoReady], None] = lambda ready: None,
    exact_port: bool = False,
) -> None:
    """Run until ``stop`` is set (start-up stops early too). ``on_ready`` is called once
    every part is up and the device has featurized its first frame (or a camera has had
    FIRST_FRAME_WAIT_S to give one), after the start-up log lines. ``exact_port``:
    web.port was asked for, so a taken one is an error rather than a free one taken."""
    settings = demo_settings(settings)
    web_port = _web_port(settings.web.host, settings.web.port, exact=exact_port)
    workdir = settings.data_dir
    if stop.is_set():  # Ctrl-C while the CLI was still importing
        return
    with ExitStack() as running:  # each part stopped in reverse order, whatever happens
        redis_server = running.enter_context(RedisServer(workdir=workdir / "redis"))
        # Broker accounts as in production: the device downloads rolled-out models from
        # the web app with its own, and the ACL keeps it to its own topics.
        accounts = BrokerAccounts(
            password_file=settings.broker_password_file, acl_file=settings.broker_acl_file
        )
        worker_account = accounts.enroll_worker(DEMO_WORKER)
        device_account = accounts.enroll_device(settings.device.device_id)
        broker = running.enter_context(
            MosquittoServer(
                workdir=workdir / "mosquitto",
                password_file=settings.broker_password_file,
                acl_file=settings.broker_acl_file,
            )
        )
        settings = settings.model_copy(
            update={
                "redis_url": AnyUrl(redis_server.url),
                "mqtt_url": AnyUrl(worker_account.url(broker.url)),
                # its own servers, so its worker's /metrics too: a free port, never one a
                # real worker (or another demo) holds
                "worker": settings.worker.model_copy(update={"metrics_port": 0}),
            }
        )
        featurizer = load_featurizer(settings)
        if stop.is_set():
            return
        report = build_sample_catalog(settings, featurizer)
        logger.info(
            "demo catalog: %d items (%d featurized, %d from cache) in %s",
            report.added + report.updated + report.unchanged,
            report.featurized,
            report.cached,
            redact_urls(settings.catalog_url),
        )
        password = _demo_admin(settings)
        video = source or str(camera_video(workdir))
        if stop.is_set():
            return
        web = WebServer(settings, featurizer, port=web_port)
        device = settings.device.model_copy(
            update={"source": video, "loop": source is None, "model_server_url": web.url}
        )
        device_settings = settings.model_copy(
            update={"device": device, "mqtt_url": AnyUrl(device_account.url(broker.url))}
        )
        device_loop = DeviceLoop(  # a missing or broken --source file fails here
            device=device,
            featurizer=featurizer,
            mqtt_url=str(device_settings.mqtt_url),
            mqtt_tls=settings.mqtt_tls,
            stop=stop,
        )
        worker = Worker(settings)
        worker.start()
        running.callback(worker.stop)
        web.start()
        running.callback(web.stop)
        device_thread = DeviceThread(
            device_loop, ModelUpdates.for_loop(device_loop, device_settings), stop
        )
        device_thread.start()
        running.callback(device_thread.join)
        running.callback(stop.set)  # first of the stops: the device leaves, then the rest
        if device_thread.wait_first_frame(FIRST_FRAME_WAIT_S):
            waiting = None if device_loop.first_frame.is_set() else redact_urls(video)
            page = f"/devices/{device.device_id}"
            network = web.network_url
            on_ready(
                DemoReady(
                    web.url + page,
                    DEMO_ADMIN,
                    password,
                    waiting_for=waiting,
                    network_url=network + page if network else None,
                )
            )
        stop.wait()
    if device_thread.error is not None:
        raise device_thread.error


class DeviceThread:
    """The demo's device loop in a thread, following model rollouts as a device does; an
    error it ends with stops the whole demo and is kept, to be raised once everything has
    stopped."""

    def __init__(self, loop: DeviceLoop, updates: ModelUpdates, stop: threading.Event) -> None:
        self._loop = loop
        self._updates = updates
        self._stop = stop
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="demo-device", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_first_frame(self, timeout: float) -> bool:
        """Wait for the device's first frame (or ``timeout``); False if the demo is
        stopping meanwhile."""
        deadline = time.monotonic() + timeout
        while not self._loop.first_frame.wait(0.1):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
        return not self._stop.is_set()

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            with self._updates:
                self._loop.run()
        except Exception as exc:  # raised by run_demo once everything has stopped
            self.error = exc
        finally:
            self._stop.set()


def _demo_admin(settings: Settings) -> str:
    """The dashboard admin "demo" gets a new random password at every start, so the
    banner can show one that works; only its hash is stored (in the demo's own accounts)."""
    password = secrets.token_urlsafe(12)
    accounts = AccountStore(accounts_path(settings.data_dir))
    try:
        accounts.set_admin(username=DEMO_ADMIN, password=password)
    finally:
        accounts.close()
    return password


def build_sample_catalog(
    settings: Settings, featurizer: Featurizer, *, item_ids: Collection[str] | None = None
) -> IngestReport:
    """Put the scikit-image sample photos (or those of ``item_ids``) into the catalog,
    as `edgelens catalog add` would; the demo's, the tests' and the benchmarks' catalog."""
    manifest = write_sample_catalog(settings.data_dir / "samples")
    sources = [s for s in collect_sources([manifest]) if item_ids is None or s.item_id in item_ids]
    store = CatalogStore(settings.catalog_url)
    try:
        return add_items(
            store=store,
            featurizer=featurizer,
            sources=sources,
            images_dir=settings.images_dir,
            recipe=CatalogRecipe(settings.catalog.views),
        )
    finally:
        store.close()


def camera_video(workdir: Path) -> Path:
    path = workdir / "camera.avi"
    if not path.exists():
        loaders = {p.item_id: p.loader for p in SAMPLE_PHOTOS}
        render_camera_video(path, [load_photo(loaders[i]) for i in DEMO_ITEMS], seed=11)
        logger.info("rendered the demo camera video: %s", path)
    return path


class _ServerInThread(uvicorn.Server):
    """uvicorn in a thread has no signal handlers, and sse-starlette finds the server it
    ends live streams for through them; so the app's live views are ended here as the
    server stops, before it waits for open connections (a tab left open would otherwise
    hold the stop until uvicorn cancels it, with a traceback)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        live = getattr(self.config.app.state, "live", None)
        if live is not None:
            live.end_streams()
        await super().shutdown(sockets)


class WebServer:
    """uvicorn in a thread, stopped through its should_exit flag."""

    def __init__(
        self, settings: Settings, featurizer: Featurizer, *, port: int | None = None
    ) -> None:
        host = settings.web.host
        if port is None:  # web.port, or any free port if that one is taken
            port = _web_port(host, settings.web.port, exact=False)
        config = uvicorn.Config(
            create_app(settings, featurizer=featurizer),
            host=host,
            port=port,
            log_level="warning",
            log_config=None,  # uvicorn's lines through the CLI's handlers, which it keeps
            timeout_graceful_shutdown=1,  # open event streams must not hold the stop
        )
        self._server = _ServerInThread(config)
        self._thread = threading.Thread(target=self._server.run, name="demo-web", daemon=True)
        self.url = f"http://{browse_host(host)}:{port}"
        address = lan_address() if host in WILDCARD_HOSTS else None
        self.network_url = f"http://{address}:{port}" if address else None

    def start(self, timeout: float = 20.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise ServerError(f"the web app did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        logger.info("web app stopped")


WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def browse_host(host: str) -> str:
    """The host a browser on this machine opens for a server listening on ``host``."""
    if host in WILDCARD_HOSTS:  # every interface: loopback is one of them
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def lan_address() -> str | None:
    """This machine's address on its network (the interface its default route uses), for
    other machines to open the dashboard at; None without a network."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # UDP: picks a route, sends nothing
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _web_port(host: str, port: int, *, exact: bool) -> int:
    """The dashboard's port: ``port`` if free; if taken (or 0), any free one, unless the
    port was asked for exactly, which is then an error said before anything starts."""
    if port != 0 and _port_free(host, port):
        return port
    if exact and port != 0:
        raise ServerError(f"port {port} on {host} is taken: pass another --port (0: any free)")
    return free_port()


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
