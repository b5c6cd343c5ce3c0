"""Approximate vs exact search at catalog scale; writes the search-scale section.

Runs ``edgelens.search.bench`` (the service behind ``edgelens bench search``) at
each size and tabulates the figures the issue sets: latency with and without
filters, recall@10 against exact search under the same filter, build time,
resident memory, churn throughput while serving, and save/load time.
"""

from __future__ import annotations

import argparse
import logging

from benchmarks.common import common_arguments, filter_cells, publish
from edgelens.featurizer.runtime import Featurizer
from edgelens.search.bench import SearchBenchReport, run_search_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=256, help="reduced (PCA) dimension")
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    featurizer = Featurizer.from_models_dir(args.models_dir, "fp32", providers=["cpu"])
    reports = [
        run_search_bench(featurizer=featurizer, items=items, reduced_dim=args.dim)
        for items in args.items
    ]
    body = _section(reports)
    publish("search-scale", body, write=not args.no_write)


def _section(reports: list[SearchBenchReport]) -> str:
    first = reports[0]
    config = ", ".join(f"{key} {value}" for key, value in first.config.items() if key != "nlist")
    lines = [
        "## Search at catalog scale",
        "",
        "Catalog vectors grown from real embeddings (24 camera views of each scikit-image "
        "photo, FP32 ONNX featurizer): products drawn with the photos' spread in a PCA "
        "basis, 10 view-like items per product, L2-normalised; queries are fresh views of "
        f"catalog products ({first.queries} per setting, k = 10). Index: faiss IVF-SQ8 over "
        f"a {first.reduced_dim}-d inner-product projection, int8 full vectors re-rank the "
        f"shortlist ({config}; nlist about 4·√items). Filters: available items in a random "
        "price window; cells probed grow as 1/√share, and a filter passing at most "
        "`scan_rows` rows scans their int8 reduced vectors instead of the cells. "
        "Recall@10 is against exact search under the same filter; the exact baseline is "
        "`ExactIndex` (numpy, float32) timed in the same run. The machine is shared "
        "(another process may hold a core), so latencies are upper bounds.",
        "",
        "| items | nlist | build | resident | p50 / p99 | recall@10 | filter 50% | filter 10% "
        "| filter 1% | exact p50 / p99 | speed-up | adds/s while serving | save / load |",
        "|" + " ---: |" * 13,
    ]
    for r in reports:
        lines.append(
            f"| {r.items:,} | {r.config['nlist']} | {r.build_s:.0f} s | {r.memory_mb:,.0f} MB "
            f"| {r.ann.p50_ms:.2f} / {r.ann.p99_ms:.2f} ms | {r.ann.recall_at_10:.3f} "
            f"| {filter_cells(r.ann_filtered)} "
            f"| {r.exact.p50_ms:,.0f} / {r.exact.p99_ms:,.0f} ms ({r.exact_queries} q) "
            f"| {r.speedup:,.0f}x | {r.adds_per_s:,.0f} (removes {r.removes_per_s:,.0f}) "
            f"| {r.save_s:.1f} / {r.load_s:.1f} s |"
        )
    lines += [
        "",
        "Projection energy kept: "
        + ", ".join(f"{r.items:,}: {r.projection_energy:.3f}" for r in reports)
        + ". Query p99 while adding and removing: "
        + ", ".join(f"{r.items:,}: {r.churn_p99_ms:.2f} ms" for r in reports)
        + "; removed items returned: "
        + ", ".join(str(r.stale_results) for r in reports)
        + ". Resident is the growth of RSS while building from vectors already in memory "
        "(CatalogItem objects excluded, as the catalog holds them anyway).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
