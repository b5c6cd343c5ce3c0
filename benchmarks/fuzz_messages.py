"""The long fuzz run: ≥ 100,000 generated messages through the decoder and through a real
worker's message handler (real Redis, the sample catalog), counting every outcome; as many
hostile device statuses through the worker, then every dashboard page read (none may
answer 5xx); as many hostile focus views through the view decoder, and some of them in
messages through the worker's two stages.

Messages come from the strategies the CI fuzz test uses (edgelens/testing/strategies.py):
random bytes, valid messages of the catalog's model and of others, valid messages broken
by bit flips, truncation, extension, header and NaN/Inf splices, oversized payloads,
status topics and junk topics. "Unhandled" is an exception escaping the decoder other
than WireFormatError, or anything escaping the worker (which must count it instead).
With atheris installed, a coverage-guided libFuzzer run of the decoder is added.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.common import publish
from edgelens.cloud.worker import Worker
from edgelens.demo.runner import WebServer, build_sample_catalog
from edgelens.demo.servers import RedisServer
from edgelens.errors import ImageDecodeError, WireFormatError
from edgelens.featurizer.focus import decode_focus_view, focus_view_jpeg
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.samples.views import camera_views
from edgelens.settings import VIEW_BYTES, Settings
from edgelens.testing.strategies import DEVICES, payloads, status_payloads, topics, view_jpegs
from edgelens.wire.features import FeatureMessage, decode, encode
from edgelens.wire.names import status_topic

PAGES_EVERY = 50  # statuses between two reads of every page
ATHERIS_TARGET = """
import sys
import atheris
with atheris.instrument_imports():
    from edgelens.errors import WireFormatError
    from edgelens.wire.features import decode

def one(data: bytes) -> None:
    try:
        decode(data)
    except WireFormatError:
        pass

atheris.Setup(sys.argv, one)
atheris.Fuzz()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000, help="per target")
    parser.add_argument(
        "--view-messages",
        type=int,
        help="messages with a fuzzed view through the worker (a view that passes its header "
        "check runs stage two); default: --messages",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    models_dir = Path(os.environ.get("EDGELENS_DATA_DIR", "data")) / "models"
    featurizer = Featurizer.from_models_dir(models_dir, "fp32", providers=["cpu"])
    model_ids = (featurizer.model_id, "efficientnet-lite0-int8-000000000000")

    rows = [
        _boundary_run("decoder", args.messages, payloads(model_ids, 1280), decode, WireFormatError)
    ]
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis_server:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            models_dir=models_dir,
            redis_url=redis_server.url,
            featurizer={"providers": ["cpu"]},
            search={"confirm_margin": 2.0},  # every view verified: stage two meets each
        )
        build_sample_catalog(settings, featurizer)
        worker = Worker(settings)
        web = WebServer(settings, featurizer)
        web.start()
        views = _real_views()
        try:
            rows.append(_worker_run(worker, args.messages, model_ids))
            rows.append(_status_run(worker, args.messages, web.url))
            rows.append(
                _boundary_run(
                    "focus view decoder",
                    args.messages,
                    view_jpegs(views),
                    decode_focus_view,
                    ImageDecodeError,
                )
            )
            view_messages = args.view_messages or args.messages
            rows.append(_view_worker_run(worker, view_messages, views, featurizer))
        finally:
            web.stop()
            worker.stop()
    atheris_line = _atheris_run(args.messages)
    body = _report(rows, atheris_line, args.messages)
    publish("fuzzing", body, write=not args.no_write)


def _fuzz_settings(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def _boundary_run(
    name: str, count: int, strategy, decode_one, refusal: type[Exception]
) -> tuple[str, int, Counter, float]:
    """``count`` drawn inputs through one decoder, which may decode or raise ``refusal``."""
    outcomes: Counter = Counter()

    @_fuzz_settings(count)
    @given(data=strategy)
    def drive(data: bytes) -> None:
        try:
            decode_one(data)
            outcomes["decoded"] += 1
        except refusal:
            outcomes[f"refused ({refusal.__name__})"] += 1
        except Exception as exc:  # the finding this run is for
            outcomes[f"UNHANDLED {type(exc).__name__}"] += 1

    started = time.perf_counter()
    drive()
    return name, count, outcomes, time.perf_counter() - started


def _worker_run(worker: Worker, count: int, model_ids) -> tuple[str, int, Counter, float]:
    unhandled: Counter = Counter()
    sent = 0

    @_fuzz_settings(count)
    @given(data=st.data())
    def drive(data: st.DataObject) -> None:
        nonlocal sent
        topic, payload = data.draw(topics()), data.draw(payloads(model_ids, 1280))
        sent += 1
        try:
            worker.handle_message(topic, payload)
        except Exception as exc:
            unhandled[f"UNHANDLED {type(exc).__name__}"] += 1

    started = time.perf_counter()
    drive()
    elapsed = time.perf_counter() - started
    outcomes = Counter({k: v for k, v in worker.stats.snapshot().items() if k != "push_us"})
    outcomes.update(unhandled)
    return "worker message handler", sent, outcomes, elapsed


def _status_run(worker: Worker, count: int, web_url: str) -> tuple[str, int, Counter, float]:
    """Hostile statuses through the worker; every :data:`PAGES_EVERY` of them, every page
    that shows a status read (a status that breaks a page is found while it is stored)."""
    unhandled: Counter = Counter()
    before = worker.stats.snapshot()
    pages = ["/", "/api/devices"]
    pages += [p for d in DEVICES for p in (f"/devices/{d}", f"/api/devices/{d}/matches")]
    http = httpx.Client(base_url=web_url, trust_env=False, timeout=10)
    sent = 0

    @_fuzz_settings(count)
    @given(device=st.sampled_from(DEVICES), payload=status_payloads())
    def drive(device: str, payload: bytes) -> None:
        nonlocal sent
        sent += 1
        try:
            worker.handle_message(status_topic(device), payload)
        except Exception as exc:
            unhandled[f"UNHANDLED {type(exc).__name__}"] += 1
        if sent % PAGES_EVERY == 0:
            for page in pages:
                unhandled["pages read"] += 1
                if (status := http.get(page).status_code) >= 500:
                    unhandled[f"UNHANDLED page answered {status}"] += 1

    started = time.perf_counter()
    try:
        drive()
    finally:
        http.close()
    elapsed = time.perf_counter() - started
    outcomes = _stats_since(worker, before)
    outcomes.update(unhandled)
    return "worker status handler, and the pages", count, outcomes, elapsed


def _real_views() -> tuple[bytes, ...]:
    """Focus views as devices send them, of three sample photos."""
    photos = [load_photo(photo.loader) for photo in SAMPLE_PHOTOS[:3]]
    return tuple(
        focus_view_jpeg(camera_views(photo, 1, seed=n)[0], VIEW_BYTES)
        for n, photo in enumerate(photos)
    )


def _view_worker_run(
    worker: Worker, count: int, views: tuple[bytes, ...], featurizer: Featurizer
) -> tuple[str, int, Counter, float]:
    """Messages of the catalog's model carrying fuzzed views, through both stages."""
    unhandled: Counter = Counter()
    before = worker.stats.snapshot()
    (vector,) = featurizer.embed([load_photo(SAMPLE_PHOTOS[0].loader)])
    seq = iter(range(1, 10**9))

    @_fuzz_settings(count)
    @given(device=st.sampled_from(DEVICES), view=view_jpegs(views))
    def drive(device: str, view: bytes) -> None:
        try:
            message = FeatureMessage(
                device, next(seq), time.time(), featurizer.model_id, vector, view_jpeg=view
            )
        except WireFormatError:  # not even a view the wire carries (empty, too large)
            unhandled["refused by the wire"] += 1
            return
        try:
            worker.handle_message(f"edgelens/{device}/features", encode(message))
        except Exception as exc:
            unhandled[f"UNHANDLED {type(exc).__name__}"] += 1

    started = time.perf_counter()
    drive()
    elapsed = time.perf_counter() - started
    outcomes = _stats_since(worker, before)
    outcomes.update(unhandled)
    return "worker, messages with fuzzed views (both stages)", count, outcomes, elapsed


def _stats_since(worker: Worker, before: dict[str, int]) -> Counter:
    after = worker.stats.snapshot()
    return Counter(
        {k: v - before.get(k, 0) for k, v in after.items() if k != "push_us" and v != before.get(k)}
    )


def _atheris_run(count: int) -> str:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "atheris is not installed here; the coverage-guided run was skipped."
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as target:
        target.write(ATHERIS_TARGET)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, target.name, f"-runs={count}"],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    outcome = "no crash" if result.returncode == 0 else f"CRASH (exit {result.returncode})"
    return (
        f"atheris (libFuzzer, coverage-guided) on the decoder: {count:,} runs "
        f"in {elapsed:.0f} s, {outcome}."
    )


def _report(rows, atheris_line: str, count: int) -> str:
    lines = [
        "## Fuzzing the wire format and the worker",
        "",
        f"{count:,} generated messages per target (Hypothesis strategies of "
        "`edgelens/testing/strategies.py`: random bytes; valid messages of the catalog's model and "
        "of others, with float16/float32/int8 vectors; valid messages broken by bit flips, "
        "truncation, extension, header and NaN/Inf splices; oversized payloads; status and "
        "junk topics). The worker is a real one on the sample catalog and a real Redis. "
        "Statuses: the keys devices send with hostile values (NaN, Infinity, 1e308, "
        "strings of 5,000 characters, wrong types), unknown keys, other JSON, not JSON, "
        "oversized; then the dashboard (the same Redis) reads its home page, device list "
        "and each fuzzed device's page and matches. Views (`edgelens/testing/strategies.py`, "
        "view_jpegs): real focus views broken by bit flips, splices and truncation, frame "
        "headers claiming any size and component count, other formats' magic, garbage; "
        "the decoder alone, then messages carrying them through a worker's two stages.",
        "",
        "| target | messages | seconds | outcomes | unhandled |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for name, sent, outcomes, elapsed in rows:
        bad = sum(
            v for k, v in outcomes.items() if k.startswith("UNHANDLED") or k == "errors_unexpected"
        )
        shown = ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()) if k != "received")
        lines.append(f"| {name} | {sent:,} | {elapsed:.0f} | {shown} | {bad} |")
    lines += ["", atheris_line]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
