"""The supervised servers leave nothing behind, even when the process that started them is
SIGKILLed (no chance to run its clean-up)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.processes import alive

SCRIPT = """
import sys, time
from edgelens.demo.servers import MosquittoServer, RedisServer
servers = [RedisServer().__enter__(), MosquittoServer().__enter__()]
print(*(s.pid for s in servers), flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux parent-death signal")
def test_servers_exit_when_their_starter_is_killed():
    starter = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    pids = [int(p) for p in starter.stdout.readline().split()]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)
