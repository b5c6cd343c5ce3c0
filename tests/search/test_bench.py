"""The search benchmark: realistic vector model and the `bench search --json` contract."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgelens.cli import bench
from edgelens.search.bench import VectorModel


def test_vector_model_keeps_views_of_a_product_together():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 32))
    labels = np.repeat(np.arange(5), 20)
    real = centres[labels] + 0.2 * rng.normal(size=(100, 32))
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    model = VectorModel.fit(real, labels)
    assert model.within[:4].max() < model.between[:4].min()  # products differ more than views

    products = model.products(50, rng)
    family = np.repeat(np.arange(50), 4)
    views = model.views(products[family], rng)
    np.testing.assert_allclose(np.linalg.norm(views, axis=1), 1.0, atol=1e-5)
    scores = views @ views.T
    np.fill_diagonal(scores, -np.inf)
    same_product = family[scores.argmax(axis=1)] == family
    assert same_product.mean() > 0.9  # a view's nearest neighbour is another view of it


def test_cli_bench_search_prints_the_json_report(settings):
    root = typer.Typer()
    root.add_typer(bench.app, name="bench")
    result = CliRunner().invoke(
        root,
        ["bench", "search", "--items", "2000", "--json", "--views", "1", "--queries", "20"],
        obj=settings,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"items", "build_s", "memory_mb", "ann", "ann_filtered", "exact", "adds_per_s"} <= set(
        report
    )
    assert report["items"] == 2000
    assert set(report["ann"]) == {"p50_ms", "p99_ms", "recall_at_10"}
    assert [f["selectivity"] for f in report["ann_filtered"]] == [
        pytest.approx(s, abs=0.03) for s in (0.5, 0.1, 0.01)
    ]
    for entry in report["ann_filtered"]:
        assert {"p50_ms", "p99_ms", "recall_at_10"} <= set(entry)
        assert entry["recall_at_10"] >= 0.9
    assert {"p50_ms", "p99_ms"} <= set(report["exact"])
    assert report["ann"]["recall_at_10"] >= 0.9 and report["stale_results"] == 0
