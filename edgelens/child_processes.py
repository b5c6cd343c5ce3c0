"""Helper servers (redis-server, mosquitto, milvus-server) that die with the process that
started them, so a killed demo, test run or benchmark leaves nothing running behind it."""

from __future__ import annotations

import shutil
import threading


def exit_with_this_process(signal_name: str = "TERM") -> list[str]:
    """A command prefix that sends the child ``signal_name`` if this process dies, even by
    SIGKILL (Linux's parent-death signal, set by util-linux's setpriv, kept across its exec).
    The signal follows the *thread* that started the child, so only children started from the
    main thread get it; none where setpriv is missing."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", signal_name, "--"]
