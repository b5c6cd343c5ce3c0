"""Shared by the benchmarks: machine description, timing, docs/benchmarks.md sections."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgelens.search.bench import Latency

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """--models-dir (the exported models; $EDGELENS_DATA_DIR/models) and --no-write."""
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("EDGELENS_DATA_DIR", "data")) / "models",
    )
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def filter_cells(filtered: Sequence[Latency]) -> str:
    """One table cell per filter: its p50 / p99 and its recall@10, as the search tables
    give them."""
    return " | ".join(
        f"{f.p50_ms:.2f} / {f.p99_ms:.2f} ms, R {f.recall_at_10:.3f}" for f in filtered
    )


def p50_p99(values: Sequence[float], *, digits: int = 1, between: str = " / ") -> str:
    """Both percentiles for a table: "p50 / p99", or two cells with ``between=" | "``;
    "-" for each when nothing was measured (no record reached that stage)."""
    if not len(values):
        return between.join("--")
    p50, p99 = (float(p) for p in np.percentile(np.asarray(values, dtype=float), [50, 99]))
    return f"{p50:.{digits}f}{between}{p99:.{digits}f}"


def median_seconds(run: Callable[[], object], *, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _main_module() -> str:
    """The module run as ``python -m`` (its name is what reruns it)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is None:
        raise SystemExit("run the benchmarks as modules: python -m benchmarks.<name>")
    return spec.name


def publish(name: str, body: str, *, write: bool) -> None:
    """Give the report as the command's output, and put it in docs/benchmarks.md if ``write``.

    The report is what the command is run for (a table to read or pipe), so it goes to
    stdout, not to the log; ``write`` replaces (or appends) the section between the
    BEGIN/END markers named ``name``, stamped with the command and the machine.
    """
    sys.stdout.write(body.rstrip() + "\n")
    if write:
        _write_section(name, body)


def _write_section(name: str, body: str) -> None:
    command = " ".join(["python -m", _main_module(), *sys.argv[1:]])
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- BEGIN {name} -->\n{body.rstrip()}\n\n"
        f"_Made by `{command}` on {stamp}; {machine()}._\n<!-- END {name} -->"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text)
