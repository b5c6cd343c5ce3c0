"""The supervised servers leave nothing behind, even when the process that started them is
SIGKILLed (no chance to run its clean-up)."""

import sys

import pytest

from edgelens.testing.processes import kill_starter

SCRIPT = """
import sys, time
from edgelens.demo.servers import MosquittoServer, RedisServer
servers = [RedisServer().__enter__(), MosquittoServer().__enter__()]
print(*(s.pid for s in servers), flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux parent-death signal")
def test_servers_exit_when_their_starter_is_killed():
    running, left = kill_starter([sys.executable, "-c", SCRIPT], wait_s=10)
    assert len(running) == 2 and left == []
