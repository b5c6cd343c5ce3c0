"""The demo as a user starts it: every part up, matches flowing, everything stopped after."""

from __future__ import annotations

import re
import shutil
import threading
import time

import httpx

from edgelens.catalog.ingest import reindex
from edgelens.catalog.store import CatalogStore
from edgelens.demo.runner import DemoReady, demo_settings, run_demo
from edgelens.featurizer.manifest import artefact_paths
from edgelens.featurizer.runtime import Featurizer
from edgelens.settings import Settings


def test_demo_runs_the_whole_path_follows_a_rollout_and_stops_cleanly(
    settings, demo_data_dir, tmp_path
):
    # The demo's models in a folder of the test's own: a model is rolled out into it.
    models = tmp_path / "models"
    models.mkdir()
    for pooling in ("rgem", "gap"):
        for path in artefact_paths(settings.model_path, "fp32", pooling):
            shutil.copyfile(path, models / path.name)
    settings = settings.model_copy(
        update={
            "data_dir": demo_data_dir,
            "models_dir": models,
            "featurizer": settings.featurizer.model_copy(update={"precision": "fp32"}),
            "worker": settings.worker.model_copy(update={"model_poll_s": 0.3}),
            "web": settings.web.model_copy(update={"port": 0}),
        }
    )
    stop = threading.Event()
    ready: list[DemoReady] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_demo(settings, stop=stop, on_ready=ready.append)
        except BaseException as exc:  # surfaced by the assertions below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not ready and not errors and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not errors and ready, errors
        url = ready[0].url
        client = httpx.Client(trust_env=False, timeout=10)  # loopback, never a proxy
        page = client.get(url).text
        assert "demo-cam" in page
        base = url.rsplit("/devices/", 1)[0]
        records = []
        while len(records) < 5 and time.monotonic() < deadline:
            records = client.get(f"{base}/api/devices/demo-cam/matches?limit=5").json()
            time.sleep(0.2)
        assert len(records) == 5
        assert records[0]["seq"] > records[-1]["seq"], "newest first"
        assert all(
            r["matches"] and r["model_id"].startswith("efficientnet-lite0-") for r in records
        )
        # The sign-in the banner shows works.
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"{base}/login").text)
        signed_in = client.post(
            f"{base}/login",
            data={
                "csrf_token": token.group(1),
                "username": ready[0].username,
                "password": ready[0].password,
            },
        )
        assert signed_in.status_code == 303

        # A new model exported while the demo runs: the device hears the offer, downloads
        # the model from the web app with its broker account and answers with it.
        new = Featurizer.from_models_dir(models, "fp32", "gap", providers=["cpu"])
        store = CatalogStore(demo_settings(settings).catalog_url)
        reindex(store=store, featurizer=new, images_dir=demo_settings(settings).images_dir)
        store.close()
        for exported, configured in zip(
            artefact_paths(models, "fp32", "gap"), artefact_paths(models, "fp32"), strict=True
        ):
            shutil.copyfile(exported, configured)
        deadline = time.monotonic() + 90
        newest = None
        while newest != new.model_id and time.monotonic() < deadline:
            time.sleep(0.2)
            answers = client.get(f"{base}/api/devices/demo-cam/matches?limit=1").json()
            newest = answers[0]["model_id"] if answers else None
        assert newest == new.model_id, "the demo's device answers with the rolled-out model"
        (device,) = client.get(f"{base}/api/devices").json()
        assert device["model_id"] == new.model_id
        assert (demo_data_dir / "demo" / "models" / "offered" / new.model_id).is_dir()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive() and not errors
    assert len(ready) == 1
    # The demo's catalog is its own: the one `edgelens catalog add` fills is untouched.
    assert (demo_data_dir / "demo" / "catalog.sqlite3").is_file()
    assert not (demo_data_dir / "catalog.sqlite3").exists()
    assert not (demo_data_dir / "images").exists()


def test_demo_with_a_camera_that_gives_no_frame_still_starts_and_says_so(
    settings, demo_data_dir, monkeypatch
):
    monkeypatch.setattr("edgelens.demo.runner.FIRST_FRAME_WAIT_S", 0.5)
    settings = settings.model_copy(
        update={"data_dir": demo_data_dir, "web": settings.web.model_copy(update={"port": 0})}
    )
    stop = threading.Event()
    ready: list[DemoReady] = []

    def ready_then_stop(shown: DemoReady) -> None:
        ready.append(shown)
        stop.set()

    run_demo(  # nothing listens on port 1: the device retries, the demo runs
        settings, stop=stop, source="rtsp://cam:s3cret@127.0.0.1:1/live", on_ready=ready_then_stop
    )
    assert [r.waiting_for for r in ready] == ["rtsp://cam:***@127.0.0.1:1/live"]


def test_the_demo_featurizes_with_one_thread_unless_threads_are_set(monkeypatch):
    """Its device shares the machine with the worker: one busy-waiting thread, not two;
    a thread count set in the settings (TOML or environment) is kept."""
    monkeypatch.delenv("EDGELENS_FEATURIZER__THREADS", raising=False)
    assert Settings().featurizer.threads == 2, "the default elsewhere"
    assert demo_settings(Settings()).featurizer.threads == 1
    assert demo_settings(Settings(featurizer={"threads": 2})).featurizer.threads == 2
    monkeypatch.setenv("EDGELENS_FEATURIZER__THREADS", "3")
    assert demo_settings(Settings()).featurizer.threads == 3
