"""Shared CLI plumbing: settings in the typer context, logging, errors, progress bars."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from types import FrameType
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from edgelens.errors import EdgelensError
from edgelens.settings import Settings, redact_urls

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger(__name__)

# Libraries that say at INFO what only matters when debugging: faiss's loader logs each
# CPU build it tries and fails to import (8 lines at every start). Shown with DEBUG.
QUIET_LOGGERS = ("faiss",)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

err_console = Console(stderr=True)


def print_error(heading: str, message: object) -> None:
    """``heading: message`` on stderr, the message as it is: never read as markup, and
    never wrapped at 80 columns when stderr is a file or a pipe."""
    text = Text.assemble((f"{heading}:", "bold red"), " ", str(message))
    err_console.print(text, highlight=False, soft_wrap=True)


# The option of every command that changes MQTT accounts (device enroll/revoke, cloud enroll).
ReloadPid = Annotated[
    int | None, typer.Option(help="mosquitto's pid, to reload it \\[default: broker.pid_file]")
]


class _RedactingFormatter(logging.Formatter):
    """Log lines with every URL's password replaced by ``***``, whoever logged the URL
    (our modules, a client library's error message, a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(super().format(record))


class _FolderMakingFileHandler(logging.FileHandler):
    """A log file whose folder is made when the first line is written (not before: a
    command that fails at once leaves nothing behind)."""

    def _open(self):  # logging.FileHandler's own hook
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        stream = super()._open()
        # Emptied once, then appended to: a library's logging.config.dictConfig closes every
        # handler (pymilvus's import does), and a closed handler in mode "w" never reopens.
        self.mode = "a"
        return stream


class _ConsoleHandler(logging.StreamHandler):
    """Log lines to ``sys.stderr`` as it is when each line is written, not as it was when
    the handler was made: a caller that swaps it for a while (an in-process CLI runner)
    must not leave the root logger writing to a stream it has closed since."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # logging.StreamHandler's attribute
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass  # always the current sys.stderr


def configure_logging(level: str) -> None:
    handler = _ConsoleHandler()
    handler.setFormatter(_RedactingFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    quiet = logging.NOTSET if level == "DEBUG" else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


@contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Within the block, every log line to ``path`` (a new file each run) and only warnings
    and errors to the console: for a command whose console a person reads (the demo's
    banner), not a collector. The console's levels come back after it."""
    root = logging.getLogger()
    levels = [(handler, handler.level) for handler in root.handlers]
    for handler, _ in levels:
        handler.setLevel(logging.WARNING)
    file_handler = _FolderMakingFileHandler(path, "w", encoding="utf-8", delay=True)
    file_handler.setFormatter(_RedactingFormatter(LOG_FORMAT))
    root.addHandler(file_handler)
    try:
        yield
    finally:
        root.removeHandler(file_handler)
        file_handler.close()
        for handler, level in levels:
            handler.setLevel(level)


def settings_of(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    if not isinstance(settings, Settings):  # pragma: no cover - set by the root callback
        raise RuntimeError("settings were not loaded")
    return settings


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn EdgelensError into one readable line on stderr and exit status 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except EdgelensError as exc:
            print_error("error", exc)
            raise typer.Exit(1) from exc

    return wrapper


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM set ``stop``, for a clean stop instead of a traceback;
    the previous handlers come back after."""

    def request_stop(signum: int, frame: FrameType | None) -> None:
        first = not stop.is_set()
        stop.set()
        if first:  # said once, however often Ctrl-C is pressed
            logger.info("%s received; stopping", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields the ``advance(n)`` callback the services accept.
    Off a terminal (a log file, CI), a log line at each tenth of the way instead."""
    if not err_console.is_terminal:
        yield _progress_lines(description, total)
        logger.info("%s: done", description)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _progress_lines(description: str, total: int | None) -> Callable[[int], None]:
    """``advance(n)`` that logs the count at each tenth of ``total`` (each 100 without one)."""
    done = 0
    step = max(1, total // 10) if total else 100

    def advance(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if before // step != done // step:
            of = f" of {total}" if total else ""
            logger.info("%s: %d%s", description, done, of)

    return advance
