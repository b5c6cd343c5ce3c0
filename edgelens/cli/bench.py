"""``edgelens bench``: measure the search at catalog scale on this machine."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from edgelens.cli.context import progress_bar, reports_errors, settings_of
from edgelens.featurizer.runtime import Featurizer

if TYPE_CHECKING:  # faiss is the [cloud] extra: imported when the command runs
    from edgelens.search.bench import Latency, SearchBenchReport

app = typer.Typer(help="Benchmarks.", no_args_is_help=True)


@app.callback()
def bench() -> None:
    """Benchmarks that run on this machine's CPU (typer needs a group for subcommands)."""


@app.command("search")
@reports_errors
def search(
    ctx: typer.Context,
    items: Annotated[int, typer.Option("--items", min=100, help="Catalog size.")],
    dim: Annotated[int, typer.Option("--dim", min=8, help="Reduced (PCA) dimension.")] = 256,
    queries: Annotated[int, typer.Option("--queries", min=10, help="Queries per setting.")] = 200,
    views: Annotated[
        int, typer.Option("--views", min=1, help="Camera views per sample photo to featurize.")
    ] = 24,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Approximate vs exact search on N realistic vectors: latency, recall, memory, churn."""
    from edgelens.search.bench import run_search_bench

    featurizer = Featurizer.from_models_dir(settings_of(ctx).model_path, "fp32", providers=["cpu"])
    with progress_bar("indexing", items) as advance:
        report = run_search_bench(
            featurizer=featurizer,
            items=items,
            reduced_dim=dim,
            queries=queries,
            views=views,
            progress=advance,
        )
    typer.echo(json.dumps(report.to_dict()) if as_json else _text(report))


def _text(report: SearchBenchReport) -> str:
    lines = [
        f"{report.items} items, {report.dim}-d reduced to {report.reduced_dim}-d: "
        f"built in {report.build_s:.1f} s, {report.memory_mb:.0f} MB resident",
        _row("approximate", report.ann),
        *(_row(f"  filter {f.selectivity:.0%}", f) for f in report.ann_filtered),
        _row("exact numpy", report.exact),
        f"speed-up {report.speedup:.0f}x; {report.adds_per_s:.0f} adds/s and "
        f"{report.removes_per_s:.0f} removes/s while serving (query p99 "
        f"{report.churn_p99_ms:.2f} ms, {report.stale_results} stale results)",
        f"saved in {report.save_s:.1f} s, loaded in {report.load_s:.1f} s "
        f"({report.file_mb:.0f} MB)",
    ]
    return "\n".join(lines)


def _row(label: str, latency: Latency) -> str:
    recall = latency.recall_at_10
    tail = "" if recall is None else f", recall@10 {recall:.3f}"
    return f"{label:<20} p50 {latency.p50_ms:.2f} ms, p99 {latency.p99_ms:.2f} ms{tail}"
