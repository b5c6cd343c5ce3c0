"""The long fuzz run: ≥ 100,000 generated messages through the decoder and through a real
worker's message handler (real Redis, the sample catalog), counting every outcome.

Messages come from the strategies the CI fuzz test uses (tests/wire/strategies.py):
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import write_section
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgelens.cloud.worker import Worker
from edgelens.demo.runner import build_sample_catalog
from edgelens.demo.servers import RedisServer
from edgelens.errors import WireFormatError
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Settings
from edgelens.wire.features import decode
from tests.wire.strategies import payloads, topics

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
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    models_dir = Path(os.environ.get("EDGELENS_DATA_DIR", "data")) / "models"
    featurizer = Featurizer.from_models_dir(models_dir, "fp32", providers=["cpu"])
    model_ids = (featurizer.model_id, "efficientnet-lite0-int8-000000000000")

    rows = [_decoder_run(args.messages, model_ids)]
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis_server:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            models_dir=models_dir,
            redis_url=redis_server.url,
            featurizer={"providers": ["cpu"]},
        )
        build_sample_catalog(settings, featurizer)
        worker = Worker(settings)
        try:
            rows.append(_worker_run(worker, args.messages, model_ids))
        finally:
            worker.stop()
    atheris_line = _atheris_run(args.messages)
    body = _report(rows, atheris_line, args.messages)
    print(body)
    if not args.no_write:
        write_section("fuzzing", body)


def _fuzz_settings(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def _decoder_run(count: int, model_ids: tuple[str, ...]) -> tuple[str, int, Counter, float]:
    outcomes: Counter = Counter()

    @_fuzz_settings(count)
    @given(payload=payloads(model_ids, 1280))
    def drive(payload: bytes) -> None:
        try:
            decode(payload)
            outcomes["decoded"] += 1
        except WireFormatError:
            outcomes["refused (WireFormatError)"] += 1
        except Exception as exc:  # the finding this run is for
            outcomes[f"UNHANDLED {type(exc).__name__}"] += 1

    started = time.perf_counter()
    drive()
    return "decoder", sum(outcomes.values()), outcomes, time.perf_counter() - started


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
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
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
        "`tests/wire/strategies.py`: random bytes; valid messages of the catalog's model and "
        "of others, with float16/float32/int8 vectors; valid messages broken by bit flips, "
        "truncation, extension, header and NaN/Inf splices; oversized payloads; status and "
        "junk topics). The worker is a real one on the sample catalog and a real Redis.",
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
