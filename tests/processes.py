"""Process checks shared by the tests that kill a starter and expect its servers gone."""

from pathlib import Path


def alive(pid: int) -> bool:
    """Running (a zombie has exited; only its parent has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
