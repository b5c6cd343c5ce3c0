"""Retrieval quality per precision on the scikit-image catalog, and the vector cache count.

Every precision is evaluated on the same seeded camera-like views in the same run,
FP32 being the baseline; the real stereo second view of the motorcycle is reported
too. Cross-precision rows search a catalog featurized in FP32 with device vectors
of another precision (what a device running its own precision would face).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import write_section

from edgelens.catalog.ingest import add_items, reindex
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.evaluation.runner import (
    Query,
    catalog_index,
    evaluate,
    synthetic_queries,
)
from edgelens.evaluation.sample_photos import load_motorcycle_right_view, write_sample_catalog
from edgelens.featurizer.runtime import Featurizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--views", type=int, default=20, help="synthetic views per catalog photo")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("EDGELENS_DATA_DIR", "data")) / "models",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_sample_catalog(Path(tmp) / "samples")
        sources = collect_sources([manifest])
        featurizers = {
            p: Featurizer.from_models_dir(args.models_dir, p, providers=["cpu"])
            for p in ("fp32", "fp16", "int8")
        }
        indexes = {p: catalog_index(f, sources) for p, f in featurizers.items()}
        images = indexes["fp32"][1]
        queries = synthetic_queries(images, args.views, args.seed)
        stereo = [Query("motorcycle", load_motorcycle_right_view(), "stereo right view")]

        rows = []
        for precision, featurizer in featurizers.items():
            index = indexes[precision][0]
            synthetic = evaluate(featurizer, index, queries)
            real = evaluate(featurizer, index, stereo)
            rows.append((f"{precision.upper()} (catalog {precision.upper()})", synthetic, real))
        for precision in ("fp16", "int8"):
            synthetic = evaluate(featurizers[precision], indexes["fp32"][0], queries)
            real = evaluate(featurizers[precision], indexes["fp32"][0], stereo)
            rows.append((f"{precision.upper()} device vs FP32 catalog", synthetic, real))

        cache = _cache_counts(Path(tmp), featurizers["fp32"], sources)

    base = rows[0][1].top1
    lines = [
        f"{len(sources)} catalog photos from scikit-image, {len(queries)} synthetic camera views "
        f"({args.views} per photo, seed {args.seed}: perspective, crop, rotation, blur, light, "
        "noise, JPEG), plus the real right-hand stereo view of the motorcycle.",
        "",
        "| precision | top-1 | top-5 | recall@10 | mAP | Δ top-1 vs FP32 | stereo view rank-1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m, real in rows:
        lines.append(
            f"| {name} | {m.top1:.3f} | {m.top5:.3f} | {m.recall_at_10:.3f} | {m.map:.3f} | "
            f"{(m.top1 - base) * 100:+.1f} pts | {'yes' if real.top1 == 1.0 else 'no'} |"
        )
    lines += [
        "",
        "Vector cache (same folder added twice, then re-indexed, same model): "
        f"first add featurized **{cache[0]}** images, second add **{cache[1]}**, "
        f"re-index **{cache[2]}**.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("retrieval-quality", "## Retrieval quality per precision\n\n" + body)


def _cache_counts(tmp: Path, featurizer: Featurizer, sources: list) -> tuple[int, int, int]:
    store = CatalogStore(tmp / "catalog.sqlite3")
    images_dir = tmp / "images"
    first = add_items(store=store, featurizer=featurizer, sources=sources, images_dir=images_dir)
    second = add_items(store=store, featurizer=featurizer, sources=sources, images_dir=images_dir)
    again = reindex(store=store, featurizer=featurizer, images_dir=images_dir)
    store.close()
    return first.featurized, second.featurized, again.featurized


if __name__ == "__main__":
    main()
