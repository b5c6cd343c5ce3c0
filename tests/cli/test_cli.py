"""The `edgelens` command as a user runs it (typer's runner, real models, real files)."""

import inspect
import json
import re
import subprocess
import sys
import time
from dataclasses import replace

import cv2
import pytest
import redis
from typer.testing import CliRunner

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.cli.main import app
from edgelens.evaluation.empty_views import empty_views
from edgelens.evaluation.real_views import REAL_PAIRS
from edgelens.evaluation.runner import load_catalog
from edgelens.evaluation.variants import is_colour
from edgelens.featurizer.manifest import load_manifest
from edgelens.samples.photos import SAMPLE_PHOTOS
from edgelens.wire.names import CATALOG_CHANNEL, ROLLOUT_KEY
from edgelens.wire.rollout import Rollout

runner = CliRunner()


def _ids(items) -> set[str]:
    return {item.item_id for item in items}


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_the_subcommands():
    result = _run("--help")
    assert result.exit_code == 0
    for group in ("config", "model", "catalog", "eval"):
        assert group in result.output


def _commands(command, path=()):
    """Every command under ``command``: (its words, the click command)."""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))
    if not getattr(command, "commands", None):
        yield " ".join(path), command


def test_every_command_is_listed_on_one_line_of_its_own():
    """A group's --help lists each command by its help's first paragraph, and typer keeps
    that paragraph's line breaks there ("...featurized by this model are" / "not featurized
    again."): so that paragraph is one line, the details after a blank line."""
    from typer.main import get_command

    broken = [
        words
        for words, command in _commands(get_command(app))
        if "\n" in inspect.cleandoc(command.help or "").split("\n\n")[0]
    ]
    assert not broken, f"first help paragraph over several lines: {broken}"
    result = runner.invoke(app, ["catalog", "--help"], env={"COLUMNS": "200"})
    listed = [line for line in result.output.splitlines() if "Add or update items" in line]
    assert len(listed) == 1 and "Images already featurized" not in result.output


def test_python_dash_m_runs_the_same_cli(settings):
    """Where no console script is installed (a checkout, another interpreter's bin)."""
    result = subprocess.run(
        [sys.executable, "-m", "edgelens", "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"configuration OK (data dir: {settings.data_dir})" in result.stdout


def test_config_check_ok_and_invalid(settings, tmp_path, monkeypatch):
    assert _run("config", "check").exit_code == 0
    monkeypatch.setenv("EDGELENS_MQTT_URL", "http://wrong")
    result = _run("config", "check")
    assert result.exit_code == 2
    assert "mqtt_url" in result.output


def test_config_check_production_names_each_fix(settings, monkeypatch):
    monkeypatch.setenv("EDGELENS_REDIS_URL", "redis://:red-secret@10.0.0.5:6379/0")
    refused = _run("config", "check", "--production")
    assert refused.exit_code == 2
    for fix in ("use rediss://", "mqtt_url needs a user", "web.secure_cookies", "web.secret_key"):
        assert fix in refused.output
    assert "red-secret" not in refused.output
    for name, value in {
        "REDIS_URL": "rediss://:red-secret@10.0.0.5:6379/0",
        "MQTT_URL": "mqtts://worker:mq-secret@broker:8883",
        "WEB__SECRET_KEY": "k" * 40,
        "WEB__SECURE_COOKIES": "true",
        "MODE": "production",
    }.items():
        monkeypatch.setenv(f"EDGELENS_{name}", value)
    ready = _run("config", "check", "--production")
    assert ready.exit_code == 0 and "ready for production" in ready.output
    shown = _run("config", "show").output
    assert "red-secret" not in shown and "mq-secret" not in shown and "k" * 40 not in shown
    assert '"public_dashboard": false' in shown, "private by default in production"


def test_catalog_add_list_remove_and_cache(settings, sample_catalog):
    first = _run("catalog", "add", str(sample_catalog))
    assert first.exit_code == 0, first.output
    assert "added 20" in first.output and "featurized 20" in first.output
    again = _run("catalog", "add", str(sample_catalog.parent))
    assert "featurized 0" in again.output and "from cache 20" in again.output

    listed = [json.loads(line) for line in _run("catalog", "list", "--json").output.splitlines()]
    assert len(listed) == 20
    assert {"item_id": "coffee", "name": "Coffee cup"}.items() <= next(
        i for i in listed if i["item_id"] == "coffee"
    ).items()

    removed = _run("catalog", "remove", "coffee", "ghost")
    assert removed.exit_code == 1 and "ghost" in removed.output
    assert len(_run("catalog", "list").output.splitlines()) == 19


def test_catalog_commands_wake_the_workers_only_when_the_catalog_changed(
    settings, sample_catalog, redis_server, monkeypatch, tmp_path
):
    """A refused photo, an unknown id or a photo already in: the workers have nothing to
    apply, and nothing is published; an added photo and a removed item each wake them with
    the newest change number."""
    monkeypatch.setenv("EDGELENS_REDIS_URL", redis_server.url)
    listener = redis.Redis.from_url(redis_server.url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(CATALOG_CHANNEL)
    listener.get_message(timeout=1.0)

    def published() -> list[int]:
        heard = []
        while (message := listener.get_message(timeout=0.5)) is not None:
            heard.append(int(message["data"]))
        return heard

    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not an image")
    assert _run("catalog", "add", str(not_an_image)).exit_code == 1
    assert _run("catalog", "remove", "ghost").exit_code == 1
    assert published() == []
    coffee = str(sample_catalog.parent / "coffee.png")
    assert _run("catalog", "add", coffee).exit_code == 0
    store = CatalogStore(settings.catalog_url)
    try:
        assert published() == [store.last_change]
        assert _run("catalog", "add", coffee).exit_code == 0  # unchanged
        assert published() == []
        assert _run("catalog", "remove", "coffee").exit_code == 0
        assert published() == [store.last_change]
    finally:
        store.close()


def test_catalog_add_during_a_rollout_featurizes_with_both_models(
    settings, sample_catalog, models_dir, redis_server, monkeypatch
):
    """A precision rolled out (FP32 to INT8): the FP32 file is still here, so a photo added
    meanwhile gets the vectors of both, as a web upload would; when the old model's file
    is gone, the command says so and the configured model still takes the photo."""
    old, new = load_manifest(models_dir, "fp32"), load_manifest(models_dir, "int8")
    monkeypatch.setenv("EDGELENS_REDIS_URL", redis_server.url)
    monkeypatch.setenv("EDGELENS_FEATURIZER__PRECISION", "int8")
    rdb = redis.Redis.from_url(redis_server.url)
    rollout = Rollout(old.model_id, new.model_id, time.time(), from_manifest=old.to_json())
    rdb.hset(ROLLOUT_KEY, mapping=rollout.to_redis())

    added = _run("catalog", "add", str(sample_catalog.parent / "coffee.png"))
    assert added.exit_code == 0, added.output
    for model in (new, old):
        assert f"model {model.model_id}: added " in added.output
    gone = replace(old, onnx_sha256="0" * 64)  # another file under the old model's name
    rdb.hset(ROLLOUT_KEY, mapping={"from_manifest": gone.to_json()})
    told = _run("catalog", "add", str(sample_catalog.parent / "rocket.png"))
    assert told.exit_code == 0, told.output
    assert f"a rollout from model {old.model_id} is under way" in told.output
    assert "devices still running it find these photos once they switch" in told.output
    rdb.close()

    store = CatalogStore(settings.catalog_url)
    recipe = CatalogRecipe(settings.catalog.views).recipe_id
    held = {m.model_id: _ids(store.vectors(m.model_id, recipe)[0]) for m in (old, new)}
    store.close()
    assert held == {old.model_id: {"coffee"}, new.model_id: {"coffee", "rocket"}}


def test_a_folder_of_item_folders_through_add_list_and_eval(settings, sample_catalog, tmp_path):
    folder = tmp_path / "shop"
    for item_id, names in {"mug": ("coffee", "chelsea"), "toy": ("rocket",)}.items():
        (folder / item_id).mkdir(parents=True)
        for name in names:
            (folder / item_id / f"{name}.png").write_bytes(
                (sample_catalog.parent / f"{name}.png").read_bytes()
            )
    added = _run("catalog", "add", str(folder))
    assert added.exit_code == 0, added.output
    assert "added 2" in added.output and "catalog: 2 item(s), 3 photo(s)" in added.output
    listed = {
        row["item_id"]: row["photos"]
        for row in map(json.loads, _run("catalog", "list", "--json").output.splitlines())
    }
    assert listed == {"mug": 2, "toy": 1}
    assert "\t2 photo(s)" in _run("catalog", "list").output

    evaluated = _run("eval", "--catalog", str(folder), "--synthetic-views", "2", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    (row,) = [json.loads(x) for x in evaluated.output.splitlines() if x.startswith("{")]
    assert (row["catalog_items"], row["catalog_photos"], row["queries"]) == (2, 3, 4)
    text = _run("eval", "--catalog", str(folder), "--synthetic-views", "1").output
    assert "2 items, 3 photos" in text


def test_catalog_add_reports_corrupt_files(settings, tmp_path, sample_catalog):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    result = _run("catalog", "add", str(bad))
    assert result.exit_code == 1
    assert "bad.png" in result.output and "failed 1" in result.output
    good = sample_catalog.parent / "coffee.png"
    partly = _run("catalog", "add", str(good), str(bad))
    assert partly.exit_code == 1, "some files failed: said in the exit status too"
    assert "catalog: 1 item(s)" in partly.output, "the good one is in"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_eval_json_on_synthetic_views(settings, sample_catalog, precision):
    result = _run(
        "eval",
        "--catalog",
        str(sample_catalog.parent),
        "--synthetic-views",
        "2",
        "--precision",
        precision,
        "--json",
    )
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    metrics = json.loads(line)
    assert {"top1", "top5", "recall_at_10", "map", "queries"} <= set(metrics)
    assert metrics["queries"] == 40
    assert metrics["model_id"].startswith(f"efficientnet-lite0-rgem-{precision}-")
    assert metrics["set"] == "synthetic" and metrics["system"] == "edgelens"
    assert 0.8 <= metrics["top1"] <= metrics["top5"] <= 1.0
    low, high = metrics["top1_interval"]
    assert low < metrics["top1"] <= high


def test_eval_reports_no_match_on_views_of_things_not_in_the_catalog(
    settings, sample_catalog, tmp_path
):
    """--unknown DIR (any layout): the share answered "no match", beside top-1 with the
    decision applied, in the text and the JSON. The unknown views: frames of nothing (a
    plain wall, a covered lens, a grey card, a ramp of light, noise), one folder deep or
    not."""
    unknown = tmp_path / "unknown" / "deep"
    unknown.mkdir(parents=True)
    for n, query in enumerate(empty_views(1, seed=3)):
        cv2.imwrite(str((unknown if n % 2 else unknown.parent) / f"{n}.png"), query.image_bgr)
    common = ("eval", "--catalog", str(sample_catalog.parent), "--synthetic-views", "1")
    result = _run(*common, "--unknown", str(tmp_path / "unknown"), "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert {"no_match_rate", "top1", "top5", "queries", "unknown_queries"} <= set(row)
    assert row["unknown_queries"] == 5 and row["queries"] == 20
    assert row["no_match_rate"] == 1.0, "nothing in view is no catalog item"
    text = _run(*common, "--unknown", str(tmp_path / "unknown"))
    assert "no match on 5 unknown: 1.000" in text.output
    missing = _run(*common, "--unknown", str(tmp_path / "nowhere"))
    assert missing.exit_code != 0 and "unknown-views folder not found" in missing.output


def test_eval_prints_top1_with_its_interval(settings, sample_catalog):
    result = _run("eval", "--catalog", str(sample_catalog.parent), "--synthetic-views", "1")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("synthetic"))
    found = re.search(r"top-1 (\d\.\d{3}) \((\d\.\d{2})-(\d\.\d{2})\)", line)
    assert found, line
    top1, low, high = map(float, found.groups())
    assert low < top1 <= high and "(20 queries, 20 items" in line


def test_eval_reports_each_set_against_the_baseline(settings, sample_catalog):
    result = _run(
        "eval",
        "--catalog",
        str(sample_catalog.parent),
        "--synthetic-views",
        "1",
        "--clutter-views",
        "1",
        "--baseline",
        "--json",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines()[-6:]]
    names = ("synthetic", "clutter", "clutter, in view ignored")
    assert {(r["system"], r["set"]) for r in rows} == {
        (system, name) for system in ("edgelens", "baseline") for name in names
    }
    baseline = [r for r in rows if r["system"] == "baseline"]
    assert all(r["model_id"].startswith("efficientnet-lite0-gap-") for r in baseline)
    assert {r["system"]: r["focus"] for r in rows} == {"edgelens": True, "baseline": False}
    assert all(r["catalog_vectors"] == 20 for r in baseline)
    assert all("misses" not in r for r in rows), "misses are listed only when asked for"


def test_eval_lists_the_misses_it_counts(settings, sample_catalog):
    common = ("eval", "--catalog", str(sample_catalog.parent), "--clutter-views", "1")
    result = _run(*common, "--baseline", "--misses", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    baseline = next(r for r in rows if (r["system"], r["set"]) == ("baseline", "clutter"))
    assert baseline["misses"], "the plain baseline misses items in clutter"
    for row in rows:
        assert len(row["misses"]) == round((1 - row["top1"]) * row["queries"])
    for miss in baseline["misses"]:
        assert miss["rank"] > 1 and miss["item_id"] not in miss["answered"]
    # The text lists the same misses under each set's line.
    text = _run(*common, "--misses").output.splitlines()
    listed = sum(len(r["misses"]) for r in rows if r["system"] == "edgelens")
    assert sum(line.startswith("    missed ") for line in text) == listed


def test_eval_scores_variants_against_their_own_catalog(settings, sample_catalog):
    result = _run("eval", "--catalog", str(sample_catalog.parent), "--variant-views", "1", "--json")
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    photos = load_catalog(collect_sources([sample_catalog.parent]))
    colour = sum(is_colour(photo.image_bgr) for photo in photos)
    assert row["set"] == "variants" and row["catalog_items"] == 2 * len(SAMPLE_PHOTOS) + colour
    assert row["queries"] == row["catalog_items"] and 0 < colour < len(SAMPLE_PHOTOS)


def test_eval_needs_a_query_source(settings, sample_catalog):
    result = _run("eval", "--catalog", str(sample_catalog.parent))
    assert result.exit_code != 0
    missing = _run("eval", "--catalog", str(sample_catalog.parent), "--queries", "/nope")
    assert missing.exit_code == 1 and "--queries: no folder /nope" in missing.output


def test_eval_takes_a_manifest_as_catalog_add_does(settings, sample_catalog):
    result = _run("eval", "--catalog", str(sample_catalog), "--synthetic-views", "1", "--json")
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert row["set"] == "synthetic" and row["catalog_items"] == len(SAMPLE_PHOTOS)


@pytest.mark.parametrize("given", [(), ("--catalog", "nowhere")])
def test_eval_says_which_catalog_it_lacks(settings, given):
    result = runner.invoke(app, ["eval", "--synthetic-views", "1", *given])
    assert result.exit_code == 1
    expected = "catalog not found: nowhere" if given else "give --catalog"
    assert expected in result.output


def test_model_info_prints_the_manifest(settings):
    result = _run("model", "info", "--precision", "int8")
    assert result.exit_code == 0
    assert json.loads(result.output)["precision"] == "int8"


@pytest.mark.parametrize("command", [("model", "export"), ("model", "info")])
def test_a_precision_that_does_not_exist_is_a_usage_error(settings, command):
    """Before: 'model export -p fp8' ended in a ValueError traceback, and 'model info -p
    fp8' said to export a model that no export can make."""
    result = runner.invoke(app, [*command, "--precision", "fp8"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--precision'" in result.output and "fp8" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_eval_on_the_real_views_reports_each_group(settings, real_views):
    (settings.data_dir).mkdir(parents=True)
    (settings.data_dir / "real-views").symlink_to(real_views.root)
    result = _run("eval", "--real-views", "--baseline", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.strip().splitlines() if line[0] == "{"]
    names = {"real views", "real views: objects and scenes", "real views: near-duplicates"}
    assert {(r["system"], r["set"]) for r in rows} == {
        (system, name) for system in ("edgelens", "baseline") for name in names
    }
    by_set = {r["set"]: r for r in rows if r["system"] == "edgelens"}
    assert by_set["real views"]["queries"] == sum(
        by_set[name]["queries"] for name in names - {"real views"}
    )
    assert all(r["catalog_items"] == len(REAL_PAIRS) + len(SAMPLE_PHOTOS) for r in rows)
    assert {r["system"]: r["verify"] for r in rows} == {"edgelens": True, "baseline": False}
    assert by_set["real views"]["top5"] >= 0.9  # measured 1.000 (47 queries)


def test_eval_builds_clutter_from_other_photos_when_given(settings, sample_catalog, real_views):
    catalog = str(sample_catalog.parent)
    common = ("eval", "--catalog", catalog, "--clutter-views", "1", "--json")
    result = _run(*common, "--clutter-backgrounds", str(real_views.backgrounds_dir))
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert row["set"] == "clutter" and row["queries"] == 20
    missing = _run(*common, "--clutter-backgrounds", str(sample_catalog.parent / "nowhere"))
    assert missing.exit_code == 1 and "background folder not found" in missing.output


def test_log_lines_never_carry_a_password(capsys):
    import logging

    from edgelens.cli.context import configure_logging

    configure_logging("INFO")
    logging.getLogger("edgelens.test").warning("lost redis://:red-secret@10.0.0.5:6379/0")
    assert "redis://:***@10.0.0.5:6379/0" in capsys.readouterr().err
