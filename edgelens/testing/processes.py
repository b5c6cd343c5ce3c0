"""Process checks shared by the tests that kill a starter and expect its servers gone."""

import signal
import subprocess
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Running (a zombie has exited; only its parent has not reaped it yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def kill_starter(command: list[str], *, wait_s: float) -> tuple[list[int], list[int]]:
    """Runs ``command`` (it starts servers and prints their pids on one line), SIGKILLs it
    once they are up (no clean-up of its own can run) and waits up to ``wait_s`` for them to
    exit: the pids it printed, running when it died, and those still running after."""
    starter = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    pids = [int(p) for p in starter.stdout.readline().split()]
    running = [pid for pid in pids if alive(pid)]
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + wait_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return running, [pid for pid in pids if alive(pid)]
