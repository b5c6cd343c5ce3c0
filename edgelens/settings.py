"""The one typed settings object.

Sources, highest priority first: keyword arguments, ``EDGELENS_*`` environment
variables (nested with ``__``, e.g. ``EDGELENS_FEATURIZER__THREADS=4``), the
TOML file named by ``EDGELENS_CONFIG`` (or ``--config``), then the defaults,
which run the demo on one machine. Unknown keys in the file are errors, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    UrlConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edgelens.errors import ConfigError
from edgelens.wire.names import DEVICE_ID_PATTERN

Precision = Literal["fp32", "fp16", "int8"]
# "rgem": the product descriptor; "gap": plain global average pooling, the baseline.
Pooling = Literal["rgem", "gap"]
# How a vector travels (edgelens.wire.features.WireDtype, by name).
WireDtypeName = Literal["float16", "float32", "int8", "int8_deflate"]
ProviderName = Literal["tensorrt", "cuda", "cpu"]

RedisUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["redis", "rediss"], default_port=6379)]
MqttUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["mqtt", "mqtts"], default_port=1883)]

CONFIG_ENV = "EDGELENS_CONFIG"
# The file load_settings was given: read by the settings' sources without touching the
# process environment (which children and other threads share).
_config_file: ContextVar[str | None] = ContextVar("edgelens_config_file", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeaturizerSettings(_Section):
    """How the ONNX featurizer runs; the same on device and server."""

    precision: Precision = "fp32"
    pooling: Pooling = Field(
        default="rgem", description="Regional GeM (product) or global average (baseline)."
    )
    providers: list[ProviderName] = Field(
        default=["tensorrt", "cuda", "cpu"],
        description="Execution providers in order of preference; unavailable ones are skipped.",
    )
    threads: int = Field(
        default=2,
        ge=1,
        le=256,
        description="onnxruntime intra-op threads. They busy-wait between runs: on a device "
        "whose CPU does other work, 1 costs a few ms a frame and a fraction of the CPU "
        "(docs/benchmarks.md, featurizer speed).",
    )
    batch_size: int = Field(default=16, ge=1, le=1024)


class CatalogSettings(_Section):
    url: str = Field(
        default="",
        description="Where the catalog lives: a SQLite file (default <data_dir>/"
        "catalog.sqlite3; one machine) or postgresql://user:password@host:5432/db for "
        "workers and web apps on several machines (docs/architecture.md).",
    )

    @field_validator("url")
    @classmethod
    def _a_catalog_engine(cls, url: str) -> str:
        scheme = url.partition("://")[0] if "://" in url else ""
        if scheme and not re.fullmatch(r"sqlite|postgresql(\+\w+)?", scheme):
            raise ValueError(
                f"{scheme}:// is not a catalog: use a file path, sqlite:///… or postgresql://…"
            )
        return url

    views: int = Field(
        default=8,
        ge=1,
        le=8,
        description="Vectors per catalog image: the photo plus generated views (zoom-outs "
        "first). 8 for quality; 3 (the photo and its two zoom-outs) keeps most of the gain "
        "at 3/8 of the index memory (docs/decisions.md).",
    )


class SearchSettings(_Section):
    top_k: int = Field(default=5, ge=1, le=1000)
    backend: Literal["auto", "exact", "ann", "milvus"] = Field(
        default="auto",
        description="auto: exact below ann_min_vectors, faiss ANN above; milvus: the "
        "vector database at milvus_uri (catalogs past one machine).",
    )
    milvus_uri: str | None = Field(
        default=None,
        description="http://host:19530, or a file for milvus-lite; default <data_dir>/milvus.db.",
    )
    milvus_staging_dir: Path | None = Field(
        default=None,
        description="A folder the worker writes and the Milvus server reads (a shared mount "
        "with the server's local storage), for filling a new collection by the server's "
        "bulk insert. Unset: the temporary folder for a server on this machine; insert "
        "requests for a remote one (about a third of the speed: docs/benchmarks.md).",
    )
    milvus_index: Literal["HNSW", "FLAT"] = Field(
        default="HNSW",
        description="Vector index of a new Milvus collection: HNSW (approximate, chosen by "
        "measurement: docs/decisions.md) or FLAT (exact, slow at scale).",
    )
    verify: bool = Field(
        default=True,
        description="Re-rank the best candidates by keypoint matches when a message carries "
        "its focus view (docs/benchmarks.md: real second views, with and without).",
    )
    view_focus: bool = Field(
        default=True,
        description="Featurize the colour focus view a message carries, and the view's own "
        "centred box, with the catalog's model, so the device pays no second forward pass; "
        "each item then scores its best of the frame and the boxes.",
    )
    verify_candidates: int = Field(
        default=15,
        ge=1,
        le=100,
        description="How many of the vector search's best are verified; each costs the "
        "worker a keypoint match and a homography fit (docs/benchmarks.md, verification budget).",
    )
    verify_photos: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Of an item with several photos, how many stage two verifies: those its "
        "vectors say the view resembles most. Each costs what one candidate costs.",
    )
    match_score: float = Field(
        default=0.52,
        ge=-1,
        le=1,
        description="An answer that keypoint verification did not confirm is 'no match' "
        "unless its cosine is at least this and stands match_lead above the catalog's "
        "background for the view; both calibrated on views of items and of things not in "
        "the catalog (docs/benchmarks.md, open set).",
    )
    match_lead: float = Field(
        default=0.0,
        ge=-2,
        le=2,
        description="How far above the catalog's background for the view (the mean cosine "
        "of its 6th-15th best items) an unverified answer's cosine must stand.",
    )
    confirm_margin: float = Field(
        default=0.2,
        ge=0,
        le=2,
        description="A first answer that is a match and leads the next item by this much "
        "cosine is final: its view is not verified (stage two skipped).",
    )
    min_view_structure: float = Field(
        default=1.5,
        ge=0,
        le=100,
        description="A focus view that shows less structure than this (mean grey levels of "
        "its coarse detail: a plain wall, a covered lens, a dark aisle) is a match only "
        "when its keypoints verify it. 0 turns it off (docs/decisions.md).",
    )
    corrected_views: int = Field(
        default=1000,
        ge=0,
        le=100_000,
        description="How many corrections (the newest) the worker remembers the view of: "
        "that view seen again (cosine 0.95 or more) gets the answer a person gave it. Each "
        "adds three vectors (the frame's, the view's two) to compare with every message; 0: "
        "corrections are logged and change no answer (docs/benchmarks.md, several photos "
        "and corrections).",
    )
    ann_min_vectors: int = Field(default=50_000, ge=1)
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    available_only: bool = False


# A focus view's byte budget unless a device's settings say otherwise (device.view_bytes); at
# most what the wire carries (edgelens.wire.features.MAX_JPEG_BYTES).
VIEW_BYTES = 16 * 1024
_MAX_VIEW_BYTES = 128 * 1024


class DeviceSettings(_Section):
    """The on-device loop: which camera, how fast, how vectors travel."""

    device_id: str = Field(default="demo-cam", pattern=DEVICE_ID_PATTERN)
    source: str = Field(
        default="0",
        description="0, v4l2:///dev/video0, csi://0, rtsp://…, "
        "file://… or a path, or a folder of images.",
    )
    fps_cap: float = Field(default=15.0, gt=0, le=240)
    loop: bool = False
    wire_dtype: WireDtypeName = Field(
        default="int8_deflate",
        description="How a vector travels: int8_deflate (int8's codes, losslessly deflated: "
        "about half its bytes, the same answers), int8 (one byte a dimension and a scale; "
        "answers measured the same as float16's, docs/decisions.md), float16 or float32.",
    )
    smoothing_window: int = Field(
        default=4, ge=1, le=64, description="Frames averaged while the view is stable; 1 = off."
    )
    same_view_cosine: float = Field(
        default=0.8, gt=0, le=1, description="Cosine above which two frames show the same view."
    )
    gating: bool = Field(
        default=True,
        description="Publish only when the view changed or the keep-alive is due, so a "
        "still camera does not flood the broker; off = every frame.",
    )
    gate_cosine: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="A vector is a new view when its cosine to the last published one "
        "is below this.",
    )
    keepalive_s: float = Field(
        default=1.0, gt=0, description="Most seconds between two publishes of a still view."
    )
    focus: bool = Field(
        default=False,
        description="Featurize the frame's centred focus box here too and send its vector "
        "(one more forward pass per published frame). Off by default: the worker makes "
        "that vector from the focus view (and skips it when the device sent it); on for a "
        "device that sends no view.",
    )
    send_view: bool = Field(
        default=True,
        description="Send the focus box as a small colour JPEG once per view, when "
        "the view has settled (settle_frames): the worker featurizes it (search.view_focus) "
        "and matches its keypoints to its best candidates' photos (spatial verification). "
        "Every other message is the vector alone. Off keeps every image on the device.",
    )
    view_bytes: int = Field(
        default=VIEW_BYTES,
        ge=1024,
        le=_MAX_VIEW_BYTES,
        description="Most bytes of one focus view: a busier view is coded coarser, then "
        "smaller, until it fits (docs/benchmarks.md weighs the bytes against the answers).",
    )
    settle_frames: int = Field(
        default=3,
        ge=0,
        le=64,
        description="A view has settled when this many featurized frames in a row stay "
        "within settle_cosine of the first of them; its focus view then goes out once "
        "(that frame is published even if the gate would suppress it), and again only "
        "after a new view (a frame below same_view_cosine to it). 0 = the focus view with "
        "every published frame, as before settling (a JPEG in every message).",
    )
    settle_cosine: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Cosine each of the settle_frames frames keeps to the first of them "
        "(the frames' own vectors, not the smoothed ones).",
    )
    status_interval_s: float = Field(
        default=5.0, gt=0, description="How often the retained status carries fresh health."
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    model_server_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$",
        description="The web app that hands out new models (https://host, or with a path "
        "in front of /models/…). When the fleet, or an admin for this device, offers "
        "another model, the device downloads it from here, signing in with its broker "
        "account (the user and password in mqtt_url), checks it and switches to it "
        "between two frames, without a restart. The server's certificate is checked "
        "against the system's trusted CAs and mqtt_tls.ca_file. Unset: the device keeps "
        "its model and ignores offers.",
    )


class WorkerSettings(_Section):
    """The cloud worker: which subscription group, how many records each device keeps."""

    share_group: str = Field(default="edgelens-workers", pattern=r"^[A-Za-z0-9_-]+$")
    matches_kept: int = Field(default=50, ge=1, le=10_000, description="LTRIM length per device.")
    views_kept_s: int = Field(
        default=900,
        ge=0,
        le=86_400,
        description="How long the worker keeps in Redis the focus view a frame came with, so "
        "the device page can show it and an admin can correct its answer with it (0: none).",
    )
    math_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="BLAS/OpenMP threads per worker process, and onnxruntime's for its focus "
        "views. A worker answers one query at a time, so extra threads only contend: scale "
        "out with more worker processes.",
    )
    model_poll_s: float = Field(
        default=2.0, gt=0, description="How often a newly exported model is looked for."
    )
    catalog_poll_s: float = Field(
        default=0.5, gt=0, description="How often catalog changes are looked for."
    )
    index_writer_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="A shared index (Milvus) is written by one worker at a time, the holder "
        "of a Redis lease; if it dies, another takes over after at most this long.",
    )
    reconnect_max_s: float = Field(
        default=2.0,
        gt=0,
        description="Longest wait between two attempts to reach a lost broker; short, "
        "because a worker away is every device's matches lost.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Where /metrics and /healthz listen (0.0.0.0: all)."
    )
    metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="Port of /metrics and /healthz; 0 picks a free one. Each worker on one "
        "machine needs its own.",
    )
    device_messages_per_s: float = Field(
        default=30.0,
        gt=0,
        description="Feature messages a second one device may send; more are refused and "
        "counted (rejected_rate_limited). A device sends at most its fps_cap a second (15 "
        "by default): this is twice that, so only a broken or hostile device reaches it. "
        "Devices with a higher fps_cap need it above theirs.",
    )
    device_message_burst: int = Field(
        default=60,
        ge=1,
        description="Feature messages a device may send at once above its rate (4 s of a "
        "15 fps device), e.g. after a reconnect.",
    )
    device_bytes_per_s: int = Field(
        default=512 * 1024,
        ge=1024,
        description="Feature message bytes a second one device may send: five times what a "
        "device at the default fps_cap sends, its vectors and a focus view per settled view "
        "(docs/decisions.md).",
    )
    device_byte_burst: int = Field(
        default=1024 * 1024,
        ge=256 * 1024,
        description="Feature message bytes a device may send at once; at least 256 KB, "
        "more than the largest message (about 193 KB), which would otherwise never pass.",
    )


class MqttTlsSettings(_Section):
    """TLS towards the broker, used with an ``mqtts://`` URL (scripts/make_ca.sh makes a
    local CA for the demo). Without ca_file the system's trusted CAs check the broker."""

    ca_file: Path | None = None
    cert_file: Path | None = Field(default=None, description="Client certificate (optional).")
    key_file: Path | None = Field(default=None, description="Its private key.")


class BrokerSettings(_Section):
    """The broker's account files, written by `edgelens device enroll` on the broker host."""

    password_file: Path | None = Field(
        default=None, description="mosquitto password_file; default <data_dir>/broker/passwords."
    )
    acl_file: Path | None = Field(
        default=None, description="mosquitto acl_file; default <data_dir>/broker/acl."
    )
    pid_file: Path | None = Field(
        default=None, description="mosquitto's pid_file, to reload it after an enrollment."
    )


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs session cookies (EDGELENS_WEB__SECRET_KEY); demo mode makes a "
        "random one per start when neither this nor secret_key_file is set.",
    )
    secret_key_file: Path | None = Field(default=None, description="A file holding the key.")
    public_dashboard: bool = Field(
        default=True,
        description="Devices and matches readable without signing in; catalog changes "
        "always need an admin. Unless set, true in demo mode and false in production.",
    )
    secure_cookies: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (behind TLS)."
    )
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    max_streams: int = Field(
        default=1000,
        ge=1,
        description="Live views (event streams) one web process keeps open at once; more "
        "are refused with 429 until one closes.",
    )
    max_streams_per_client: int = Field(
        default=8,
        ge=1,
        description="Live views open at once from one client address, so one visitor "
        "cannot hold every slot; more get 429. Behind a reverse proxy the address is the "
        "X-Forwarded-For one only where uvicorn trusts the proxy (--forwarded-allow-ips).",
    )
    login_failures_per_account: int = Field(
        default=5, ge=1, description="Failed sign-ins to one admin name within login_window_s."
    )
    login_failures_per_address: int = Field(
        default=20,
        ge=1,
        description="Failed sign-ins from one client address (an IPv6 /64), whatever the names.",
    )
    login_window_s: float = Field(default=300.0, gt=0)
    device_silent_s: float = Field(
        default=30.0,
        gt=0,
        description="A device whose newest status is older than this is shown as silent "
        "('no word since …'), not online: its camera, its network or the broker may be down. "
        "Keep it several times device.status_interval_s (5 s), how often devices refresh it.",
    )


class Settings(BaseSettings):
    """Everything edgelens reads from its environment, validated once at start."""

    model_config = SettingsConfigDict(
        env_prefix="EDGELENS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(
        default=Path("data"), description="Catalog database, vector cache, images and models."
    )
    models_dir: Path | None = Field(
        default=None, description="Exported ONNX models; defaults to <data_dir>/models."
    )
    redis_url: RedisUrl = AnyUrl("redis://127.0.0.1:6379/0")
    mqtt_url: MqttUrl = AnyUrl("mqtt://127.0.0.1:1883")
    mqtt_tls: MqttTlsSettings = MqttTlsSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mode: Literal["demo", "production"] = Field(
        default="demo",
        description="production refuses to start on default secrets: no password in the "
        "MQTT or Redis URL, no web secret key.",
    )
    featurizer: FeaturizerSettings = FeaturizerSettings()
    catalog: CatalogSettings = CatalogSettings()
    search: SearchSettings = SearchSettings()
    device: DeviceSettings = DeviceSettings()
    worker: WorkerSettings = WorkerSettings()
    web: WebSettings = WebSettings()
    broker: BrokerSettings = BrokerSettings()

    @model_validator(mode="after")
    def _private_in_production(self) -> Settings:
        """Production keeps the dashboard private unless it is made public on purpose."""
        if self.mode == "production" and "public_dashboard" not in self.web.model_fields_set:
            private = self.web.model_copy(update={"public_dashboard": False})
            object.__setattr__(self, "web", private)  # still validating: frozen afterwards
        return self

    def redacted(self) -> dict[str, object]:
        """The settings as JSON-ready values, with no password of any URL or key in them."""
        return json.loads(redact_urls(self.model_dump_json()))

    @property
    def model_path(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def milvus_uri(self) -> str:
        """The Milvus server or milvus-lite file ``search.backend = "milvus"`` uses."""
        return self.search.milvus_uri or str(self.data_dir / "milvus.db")

    @property
    def catalog_url(self) -> str:
        """The catalog's database: ``catalog.url``, or the SQLite file in the data dir."""
        return self.catalog.url or str(self.data_dir / "catalog.sqlite3")

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def broker_password_file(self) -> Path:
        return self.broker.password_file or self.data_dir / "broker" / "passwords"

    @property
    def broker_acl_file(self) -> Path:
        return self.broker.acl_file or self.data_dir / "broker" / "acl"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def require_secrets(
    settings: Settings, *, mqtt: bool = False, redis: bool = False, web: bool = False
) -> None:
    """In production mode, refuse to run a part on the demo's open defaults
    (:func:`production_problems`); demo mode accepts everything.

    Each part names what it uses: a device the broker, the worker the broker and Redis,
    the web app Redis and its session key.
    """
    if settings.mode != "production":
        return
    if problems := production_problems(settings, mqtt=mqtt, redis=redis, web=web):
        raise ConfigError("production mode: " + "; ".join(problems))


# scheme://user:password@ → scheme://user:***@, wherever a URL appears in text.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):[^\s@/]*@")


def redact_urls(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``: log lines, the
    shown settings and error messages name where a server is, never how to sign in."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


def production_problems(
    settings: Settings, *, mqtt: bool = True, redis: bool = True, web: bool = True
) -> list[str]:
    """What a production deployment of the parts named must not run with, each with the
    setting that fixes it: default secrets, plain MQTT or Redis to another machine,
    session cookies over plain HTTP, a dashboard anyone can read; model downloads or the
    catalog's database over the network without TLS."""
    problems = []
    if mqtt:
        url = settings.mqtt_url
        if not (url.username and url.password):
            problems.append("mqtt_url needs a user and password (see `edgelens device enroll`)")
        if url.scheme != "mqtts" and not _loopback(url.host):
            problems.append(f"mqtt_url: plain MQTT to {url.host}: use mqtts:// (TLS)")
        server = urlsplit(settings.device.model_server_url or "https://localhost")
        if server.scheme != "https" and not _loopback(server.hostname):
            problems.append(
                f"device.model_server_url: plain HTTP to {server.hostname} would carry the "
                "device's password in clear: use https://"
            )
    catalog = urlsplit(settings.catalog.url)
    encrypted = "sslmode=require" in catalog.query or "sslmode=verify" in catalog.query
    remote = catalog.scheme.startswith("postgresql") and not _loopback(catalog.hostname)
    if remote and not encrypted:
        problems.append(
            f"catalog.url: PostgreSQL at {catalog.hostname} without TLS: add "
            "?sslmode=verify-full (or sslmode=require)"
        )
    if redis:
        url = settings.redis_url
        if not url.password:
            problems.append("redis_url needs a password (redis://:PASSWORD@host:6379/0)")
        if url.scheme != "rediss" and not _loopback(url.host):
            problems.append(f"redis_url: plain Redis to {url.host}: use rediss:// (TLS)")
    if web:
        if settings.web.secret_key is None and settings.web.secret_key_file is None:
            problems.append("web.secret_key or web.secret_key_file must be set")
        if not settings.web.secure_cookies:
            problems.append("web.secure_cookies: set true (serve the dashboard over HTTPS)")
        if settings.web.public_dashboard:
            problems.append("web.public_dashboard: set false (only admins see the shelf)")
    return problems


def _loopback(host: str | None) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build the settings, turning validation failures into one readable ConfigError."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file not found: {config_file}")
    elif (path := os.environ.get(CONFIG_ENV)) and not Path(path).is_file():
        raise ConfigError(f"config file not found: {path} (from {CONFIG_ENV})")
    token = _config_file.set(str(config_file) if config_file is not None else None)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc
    except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
        raise ConfigError(f"cannot read config file: {exc}") from exc
    finally:
        _config_file.reset(token)


# What a value that does not match a setting's pattern must look like, in words.
_PATTERN_WORDS = {
    "device.model_server_url": "a URL http(s)://host[:port][/path], without a user or "
    "password (the device signs in with its broker account)",
    "device.device_id": "a letter or digit, then letters, digits, '.', '_' or '-' (at "
    "most 64 in all)",
    "worker.share_group": "letters, digits, '_' and '-'",
}


def format_validation_error(exc: ValidationError) -> str:
    """One line a setting, in words, with every URL's password hidden (a mistyped URL is
    shown back as it was given)."""
    lines = [f"{exc.error_count()} invalid setting(s):"]
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(root)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":
            message = f"should be {_PATTERN_WORDS.get(where, 'in the form this setting takes')}"
        lines.append(redact_urls(f"  {where}: {message} (got {err.get('input')!r})"))
    return "\n".join(lines)
