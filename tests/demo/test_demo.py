"""The demo as a user starts it: every part up, matches flowing, everything stopped after."""

from __future__ import annotations

import threading
import time

import httpx

from edgelens.demo.runner import run_demo


def test_demo_runs_the_whole_path_and_stops_cleanly(settings):
    settings = settings.model_copy(update={"web": settings.web.model_copy(update={"port": 0})})
    stop = threading.Event()
    urls: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_demo(settings, stop=stop, on_ready=urls.append)
        except BaseException as exc:  # surfaced by the assertions below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not urls and not errors and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not errors and urls, errors
        client = httpx.Client(trust_env=False, timeout=10)  # loopback, never a proxy
        page = client.get(urls[0]).text
        assert "demo-cam" in page
        base = urls[0].rsplit("/devices/", 1)[0]
        records = []
        while len(records) < 5 and time.monotonic() < deadline:
            records = client.get(f"{base}/api/devices/demo-cam/matches?limit=5").json()
            time.sleep(0.2)
        assert len(records) == 5
        assert records[0]["seq"] > records[-1]["seq"], "newest first"
        assert all(
            r["matches"] and r["model_id"].startswith("efficientnet-lite0-") for r in records
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive() and not errors
