"""Retrieval quality per query set and precision, against the plain-pooling baseline.

Same catalog (the scikit-image photos), same seeded queries, same run for every row:
- synthetic: camera-like views (perspective, crop, rotation, blur, light, noise, JPEG);
- clutter: the item at 15-40% of a frame made of the other catalog photos, with shadow (and
  again with those other items, which are in view too, left out of each ranking);
- clutter, other photos: the same on photos that are not in the catalog (OpenCV's samples);
- variants: camera-like views against a catalog of the photos plus a label variant and a
  colour twin of each (near-duplicates, each an item);
- real views: 47 real second photos (sample and test photos of OpenCV, Pillow, kapture and
  pygcransac, and scikit-image's stereo pair) against their own 60-item catalog, overall and
  per group (objects and scenes; near-duplicates);
- product families (rendered): a shop's product lines (one bottle in six flavours, one tub
  in five colours...), Saleor's demo product artwork (CC-BY-4.0, from its wheel on PyPI;
  rendered, not photographs), queried by camera-like views, in clutter of other photos, and
  by its other renders (edgelens.evaluation.product_families).
"edgelens" is the product as its settings describe it (edgelens.evaluation.runner.System.product):
sharpened R-GeM pooling with the catalog recipe's views, each query sent as a device sends a
settled view (the frame's vector and its centred focus box as a colour JPEG, the focus view)
and answered by the worker's own answer path (edgelens.cloud.answer): stage one from the
vector, stage two (the view and its own centred box featurized with the catalog's model, the
best 15 re-ranked by keypoint verification) unless the first answer is already a clear match,
then the "no match" decision; top-1 counts a known item answered "no match" as wrong.
"baseline" is global average pooling with one vector per item, the plain approach. "no
decision" is the product without "no match" and always confirmed (the answer as it was before
the two stages). The open set: views of things that are not in the catalog (edgelens.evaluation.
unknown_views), the "no match" thresholds calibrated on one half and reported on the other.
Also the vector-cache count and the device-side featurize cost of both models.
"""

from __future__ import annotations

import os

# The worker's verification is timed per core: numpy's BLAS held to one thread (set before
# import), OpenCV's around that timing (_on_one_core).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import common_arguments, median_seconds, publish
from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.ingest import add_items, reindex
from edgelens.catalog.sources import collect_sources
from edgelens.catalog.store import CatalogStore
from edgelens.cloud.answer import AnswerPolicy
from edgelens.evaluation.empty_views import KINDS, empty_views
from edgelens.evaluation.openset import (
    OpenSetPoint,
    Staged,
    calibrate,
    frontier,
    operating_point,
    staged_answers,
    sweep,
)
from edgelens.evaluation.product_families import (
    CAMERA_SET,
    CLUTTER_SET,
    OTHER_VIEWS_SET,
    fetch_product_families,
    product_family_query_sets,
)
from edgelens.evaluation.real_views import BACKGROUNDS, fetch_real_views, real_view_query_sets
from edgelens.evaluation.runner import (
    CatalogCache,
    CatalogPhoto,
    Query,
    System,
    clutter_queries,
    evaluate_systems,
    load_catalog,
    synthetic_queries,
    system_answerer,
    unlabelled_queries,
)
from edgelens.evaluation.unknown_views import fetch_unknown_views
from edgelens.evaluation.variants import variant_suite
from edgelens.featurizer.focus import (
    FOCUS_AREA,
    decode_focus_view,
    focus_crop,
    focus_view_jpeg,
    focus_views,
)
from edgelens.featurizer.local_features import extract_local_features
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import write_sample_catalog
from edgelens.samples.views import camera_views, pack_shot
from edgelens.search.verify import CANDIDATES, PLANES, verify_view
from edgelens.settings import VIEW_BYTES, Settings
from edgelens.wire.records import Match

# Frames of nothing (edgelens.evaluation.empty_views) of each kind.
EMPTY_VIEWS = 4
# The search.confirm_margin values whose answers the open set replays.
CONFIRM_MARGINS = (0.05, 0.1, 0.15, 0.2, 0.3, 2.0)
# The share of unknown views the "no match" thresholds are calibrated to refuse.
NO_MATCH_TARGET = 0.92


PACK_SHOTS = "pack shots (200 px catalog)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--views", type=int, default=20, help="synthetic views per photo")
    parser.add_argument("--clutter", type=int, default=10, help="clutter views per photo")
    parser.add_argument("--variant-views", type=int, default=4, help="views per variant item")
    parser.add_argument("--family-views", type=int, default=10, help="views per family item")
    parser.add_argument("--family-clutter", type=int, default=5, help="clutter per family item")
    parser.add_argument("--seed", type=int, default=1000)
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_sample_catalog(Path(tmp) / "samples")
        sources = collect_sources([manifest])
        photos = load_catalog(sources)
        images = {p.item.item_id: p.image_bgr for p in photos}
        real_set = fetch_real_views(args.models_dir.parent / "real-views")
        query_sets = {
            "synthetic": synthetic_queries(images, args.views, args.seed),
            "clutter": clutter_queries(images, args.clutter, args.seed + 1),
            "clutter, other photos": clutter_queries(
                images, args.clutter, args.seed + 2, backgrounds=real_set.backgrounds()
            ),
        }
        real_photos = load_catalog(collect_sources([real_set.catalog_dir]))
        real_sets = real_view_query_sets(real_set)
        settings = Settings()
        systems = []
        for precision in ("fp32", "fp16", "int8"):
            ours = Featurizer.from_models_dir(args.models_dir, precision, "rgem", providers=["cpu"])
            systems.append(System.product(f"edgelens {precision.upper()}", ours, settings))
        plain = Featurizer.from_models_dir(args.models_dir, "fp32", "gap", providers=["cpu"])
        systems.append(System("baseline FP32", plain, CatalogRecipe(1)))
        fp32 = systems[0].featurizer
        for derived in systems[1:3]:  # FP16 and INT8 devices, FP32 catalog
            systems.append(
                dataclasses.replace(
                    derived, name=f"{derived.name} device, FP32 catalog", catalog_featurizer=fp32
                )
            )
        policy = systems[0].policy
        systems.append(
            dataclasses.replace(
                systems[0], name="edgelens FP32, no decision", policy=_before(policy)
            )
        )
        variant_photos, variant_sets = variant_suite(photos, args.variant_views, args.seed)
        featurized = CatalogCache()  # the open set answers over catalogs evaluated before it
        results = evaluate_systems(systems, photos, query_sets, cache=featurized)
        results += evaluate_systems(systems, variant_photos, variant_sets, cache=featurized)
        pack_photos = [dataclasses.replace(p, image_bgr=pack_shot(p.image_bgr)) for p in photos]
        pack_sets = {PACK_SHOTS: synthetic_queries(images, args.views // 4, args.seed + 3)}
        results += evaluate_systems(systems, pack_photos, pack_sets, cache=featurized)
        results += evaluate_systems(systems, real_photos, real_sets, cache=featurized)
        family_set = fetch_product_families(args.models_dir.parent / "product-families")
        family_photos = family_set.photos()
        family_sets = product_family_query_sets(
            family_photos,
            views=args.family_views,
            clutter=args.family_clutter,
            seed=args.seed + 4,
            backgrounds=real_set.backgrounds(),
            family_set=family_set,
        )
        results += evaluate_systems(systems, family_photos, family_sets, cache=featurized)
        unknown_dir = fetch_unknown_views(args.models_dir.parent / "unknown-views")
        open_set = _open_set(
            systems[0],
            {"sample photos": photos, "real views": real_photos},
            known=query_sets["synthetic"] + query_sets["clutter, other photos"],
            known_test=real_sets["real views"],
            unknown=unlabelled_queries(unknown_dir / "calibration"),
            unknown_test=unlabelled_queries(unknown_dir / "test"),
            nothing=empty_views(EMPTY_VIEWS, args.seed + 5),
            plot=None if args.no_write else Path("docs/open-set.png"),
            cache=featurized,
        )
        cache = _cache_counts(Path(tmp), systems[0].featurizer, sources)
        # The worker featurizes focus views on worker.math_threads (1) threads.
        worker_model = Featurizer.from_models_dir(
            args.models_dir, "fp32", "rgem", providers=["cpu"], threads=1
        )
        cost = _device_cost(systems[0].featurizer, systems[1].featurizer, worker_model, images)

    packs = len(pack_sets[PACK_SHOTS])
    groups = ", ".join(
        f"{name.split(': ')[1]} {len(q)}" for name, q in real_sets.items() if ": " in name
    )
    lines = [
        f"{len(photos)} catalog photos; {len(query_sets['synthetic'])} synthetic views "
        f"({args.views} per photo) and {len(query_sets['clutter'])} clutter views ({args.clutter} "
        "per photo) against them; clutter is built from the other catalog photos (other "
        f"items in view, as on a shelf), clutter, other photos from {len(BACKGROUNDS)} ordinary "
        "photographs that are not in the catalog (the item among other things). Variants: "
        f"{len(variant_sets['variants'])} camera-like views ({args.variant_views} per item) "
        f"against a {len(variant_photos)}-item catalog of the photos, a label variant of each "
        "(a 20-30% panel covered by a made-up label) and a colour twin of each colour photo (hue "
        "turned by 120 degrees), near-duplicates as a product line has them "
        f"(edgelens.evaluation.variants). Pack shots: {packs} camera-like views of the full-size "
        "photos against a catalog of the same photos as small pack shots on white (200 px, as "
        "shops often have them; edgelens.samples.views.pack_shot). The real-view "
        f"set: {len(real_sets['real views'])} real "
        f"second photos ({groups}) against their own {len(real_photos)}-item catalog. "
        f"Product families: {len(family_photos)} products in "
        f"{len(set(family_set.families().values()))} families of near-identical variants (one "
        "juice bottle in six flavours, one paint tub in five colours, hoodies, polos, T-shirts, "
        "shoes, beers, wines, cushions differing by colour, flavour, print or cut), Saleor's "
        "demo product artwork (the saleor 2.10.1 wheel on PyPI, CC-BY-4.0, Mirumee Software; "
        "rendered mock-ups, not photographs, cut-outs flattened on white): "
        f"{len(family_sets[CAMERA_SET])} camera-like views ({args.family_views} per item), "
        f"{len(family_sets[CLUTTER_SET])} in clutter of the same {len(BACKGROUNDS)} other "
        f"photos ({args.family_clutter} per item) and {len(family_sets[OTHER_VIEWS_SET])} "
        "other renders of some items (a back, a close-up, another angle) "
        "(edgelens.evaluation.product_families). "
        f"edgelens = sharpened R-GeM pooling in the graph + {CatalogRecipe().views} vectors per "
        f"catalog photo + the query's centred focus box ({FOCUS_AREA:.0%} of the frame), sent "
        "as a colour JPEG (the focus view), answered in two stages (edgelens.cloud.answer): "
        "the frame's vector at once; then, unless that first answer is a match leading the "
        f"next item by {policy.confirm_margin} cosine, the view and the view's own centred box "
        f"({FOCUS_AREA**2:.0%} of the frame) featurized with the catalog's model, each item "
        "scoring its best of frame and boxes, + spatial verification of the "
        f"best {CANDIDATES} (SIFT keypoints of the focus view against each candidate's photo, "
        "both equalised in contrast by tiles (CLAHE), matched as RootSIFT, up to "
        f"{PLANES} homographies fitted in turn by USAC); then the "
        '"no match" decision (unverified and below a cosine of '
        f"{policy.match_score} or less than {policy.match_lead} above the catalog's "
        "background for the view). Top-1 is the product's answer (the right item first and "
        'not "no match"); top-1 ranked is the ranking alone. no decision = the product as it '
        'was before the two stages (always confirmed, never "no match"); baseline = global '
        'average pooling, 1 vector per photo. "clutter, in view ignored": the same rankings '
        "of the clutter "
        "set with the other catalog items each frame shows (its background tiles) taken out, "
        "neither right nor wrong, as the revisited Oxford/Paris protocol treats its junk "
        "images: answering a catalog item that is really in the frame is then not a miss. "
        "The interval is Wilson's 95% score interval of top-1 for that many queries "
        "(edgelens.evaluation.metrics): where two rows' intervals overlap widely, the set "
        "has not told them apart.",
        "",
        "| set | system | top-1 | top-1, 95% interval | top-1 ranked | known answered "
        '"no match" | top-5 | recall@10 | mAP |',
        "| --- | --- | ---: | :---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for set_name in dict.fromkeys(r.set_name for r in results):  # in the order measured
        for r in (r for r in results if r.set_name == set_name):
            m = r.metrics
            low, high = m.top1_interval()
            lines.append(
                f"| {set_name} | {r.system} | {m.top1:.3f} | {low:.2f}-{high:.2f} | "
                f"{m.top1_ranked:.3f} | {m.no_match_known:.3f} | "
                f"{m.top5:.3f} | {m.recall_at_10:.3f} | {m.map:.3f} |"
            )
    lines += ["", *open_set]
    lines += [
        "",
        f"Device-side featurize cost, one 640x480 frame (preprocessing included), FP32: "
        f"edgelens {cost['ours']:.2f} ms, baseline {cost['plain']:.2f} ms "
        f"({cost['ours'] / cost['plain']:.2f}x) per frame. A frame that is published also "
        f"codes its focus view, {cost['view']:.2f} ms ({cost['view_bytes']:.0f} bytes): "
        f"**{(cost['ours'] + cost['view']) / cost['plain']:.2f}x** for that frame. A device "
        "that featurizes the box itself (`device.focus = true`, e.g. one that sends no view) "
        f"pays {cost['focus']:.2f} ms more: "
        f"{(cost['ours'] + cost['focus'] + cost['view']) / cost['plain']:.2f}x. "
        "How many frames are published depends on the gate: see the device-loop section. "
        "Worker side, per message, on one core: the focus view's two vectors (decode and "
        f"featurize), {cost['worker_focus']:.1f} ms; verifying {CANDIDATES} "
        "candidates, each another sample photo (extract the view's keypoints, match and fit "
        "each), "
        f"{cost['verify']:.1f} ms; `python -m benchmarks.verify` splits that cost.",
        "",
        "Vector cache (same folder added twice, then re-indexed, same model and recipe): "
        f"first add featurized **{cache[0]}** images, second add **{cache[1]}**, "
        f"re-index **{cache[2]}**.",
    ]
    body = "\n".join(lines)
    publish(
        "retrieval-quality",
        "## Retrieval quality per set and precision\n\n" + body,
        write=not args.no_write,
    )


def _open_set(
    system: System,
    catalogs: dict[str, Sequence[CatalogPhoto]],
    *,
    known: list[Query],
    known_test: list[Query],
    unknown: list[Query],
    unknown_test: list[Query],
    nothing: list[Query],
    plot: Path | None,
    cache: CatalogCache,
) -> list[str]:
    """Calibrate the "no match" thresholds on ``known`` (queries of the first catalog) and
    ``unknown`` views against every catalog; report the defaults and the calibrated point
    on the other half (``known_test`` of the last catalog, ``unknown_test``), and on frames
    of ``nothing`` against every catalog (no threshold is calibrated on them)."""
    first_name, last_name = catalogs
    staged: dict[str, list[Staged]] = {}
    for name, photos in catalogs.items():
        answerer = system_answerer(system, photos, cache)
        staged[f"unknown, {name}"] = staged_answers(system, answerer, unknown)
        staged[f"unknown test, {name}"] = staged_answers(system, answerer, unknown_test)
        staged[f"nothing, {name}"] = staged_answers(system, answerer, nothing)
        queries = known if name == first_name else known_test
        staged[f"known, {name}"] = staged_answers(system, answerer, queries)
    calibration_unknown = staged[f"unknown, {first_name}"] + staged[f"unknown, {last_name}"]
    test_unknown = staged[f"unknown test, {first_name}"] + staged[f"unknown test, {last_name}"]
    empty = staged[f"nothing, {first_name}"] + staged[f"nothing, {last_name}"]
    calibration = sweep(system.policy, staged[f"known, {first_name}"], calibration_unknown)
    chosen = calibrate(calibration, no_match_rate=NO_MATCH_TARGET)
    off = _before(system.policy)
    rows = []
    for label, policy in (
        ("no decision (before)", off),
        (
            f"default (match_score {system.policy.match_score}, "
            f"match_lead {system.policy.match_lead})",
            system.policy,
        ),
        (
            f"calibrated now (match_score {chosen.policy.match_score}, "
            f"match_lead {chosen.policy.match_lead})",
            chosen.policy,
        ),
    ):
        cal = operating_point(policy, staged[f"known, {first_name}"], calibration_unknown)
        test = operating_point(policy, staged[f"known, {last_name}"], test_unknown)
        refused = operating_point(policy, staged[f"known, {last_name}"], empty).no_match_rate
        rows.append(
            f"| {label} | {cal.known_top1:.3f} | {cal.no_match_rate:.3f} | "
            f"{test.known_top1:.3f} | {test.no_match_rate:.3f} | {refused:.3f} | "
            f"{test.confirmed_share:.2f} |"
        )
    if plot is not None:
        test_curve = [
            operating_point(p.policy, staged[f"known, {last_name}"], test_unknown)
            for p in frontier(calibration)
        ]
        _plot_open_set(frontier(calibration), test_curve, plot)
    return [
        '### Open set: "no match" on things that are not in the catalog',
        "",
        f"Unknown views: {len(unknown)} + {len(unknown_test)} real photos of things in no "
        "catalog (edgelens.evaluation.unknown_views: two halves by a fixed hash), each "
        f"answered against both catalogs ({first_name}, {last_name}). Calibration: the known "
        f"synthetic and clutter-among-other-photos views of the {first_name} "
        f"({len(known)}) and the first half of the unknown views; the thresholds with the "
        f'best known top-1 that answer at least {NO_MATCH_TARGET:.0%} of them "no match" '
        "(edgelens.evaluation.openset.calibrate). Test: the real views against their own "
        f"catalog ({len(known_test)}) and the other half of the unknown views. Known top-1 "
        'counts a known item answered "no match" as wrong; confirmed: the share of all test '
        f"views whose answer took stage two. Nothing in view: {len(nothing)} frames of "
        f"nothing, {EMPTY_VIEWS} of each kind ({', '.join(KINDS)}: "
        "edgelens.evaluation.empty_views), against both catalogs; stage two answers "
        '"no match" to a view with less structure than search.min_view_structure '
        f"({system.policy.min_view_structure}) under every threshold here.",
        "",
        '| thresholds | calibration: known top-1 | calibration: unknown "no match" | '
        'test: known top-1 | test: unknown "no match" | nothing in view: "no match" | '
        "test: confirmed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "![known top-1 against unknown views answered no match](open-set.png)",
        "",
        *_confirm_margins(
            system.policy,
            calibration=(staged[f"known, {first_name}"], calibration_unknown),
            test=(staged[f"known, {last_name}"], test_unknown),
        ),
    ]


def _confirm_margins(
    base: AnswerPolicy,
    *,
    calibration: tuple[list[Staged], list[Staged]],
    test: tuple[list[Staged], list[Staged]],
) -> list[str]:
    """What search.confirm_margin buys: at each margin, the same halves' known top-1 and
    unknown "no match", and the share of views stage two runs for (its worker time)."""
    rows = []
    for margin in CONFIRM_MARGINS:
        policy = dataclasses.replace(base, confirm_margin=margin)
        cal, held = operating_point(policy, *calibration), operating_point(policy, *test)
        label = "every view (2.0)" if margin >= 2 else f"{margin:g}"
        label += " (default)" if margin == base.confirm_margin else ""
        rows.append(
            f"| {label} | {cal.known_top1:.3f} | {cal.no_match_rate:.3f} | "
            f"{cal.confirmed_share:.2f} | {held.known_top1:.3f} | {held.no_match_rate:.3f} | "
            f"{held.confirmed_share:.2f} |"
        )
    return [
        "When stage two runs: a first answer that is a match leading the next item by "
        "search.confirm_margin (cosine) is final; every other settled view is confirmed. "
        "The same answers replayed at each margin, the default thresholds; confirmed: the "
        "share of the half's views (known and unknown) that took stage two.",
        "",
        '| confirm_margin | calibration: known top-1 | calibration: unknown "no match" | '
        'calibration: confirmed | test: known top-1 | test: unknown "no match" | '
        "test: confirmed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def _before(policy: AnswerPolicy) -> AnswerPolicy:
    """The answer as it was before the two stages: every view confirmed, no "no match"."""
    return dataclasses.replace(
        policy, match_score=-1.0, match_lead=-2.0, confirm_margin=2.0, min_view_structure=0.0
    )


def _plot_open_set(calibration: list[OpenSetPoint], test: list[OpenSetPoint], path: Path) -> None:
    """Known top-1 against the share of unknown views answered "no match", as the
    thresholds move along the calibration's frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for label, points in (("calibration", calibration), ("test (same thresholds)", test)):
        axes.plot(
            [p.no_match_rate for p in points], [p.known_top1 for p in points], ".-", label=label
        )
    axes.set_xlabel('unknown views answered "no match"')
    axes.set_ylabel("known top-1 (decision applied)")
    axes.set_title("Open set: the no-match thresholds moving")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _device_cost(
    ours: Featurizer, plain: Featurizer, worker: Featurizer, images: dict[str, np.ndarray]
) -> dict[str, float]:
    """ms of our model and the plain one on one frame of the coffee cup, of what a
    published frame adds (its focus view; the box's pass where the device makes it), and of
    the worker's share, on one core (the view's vectors with ``worker``; verification
    against ten different photos); also the view's size in bytes."""
    frame = camera_views(images["coffee"], 1, seed=3)[0]
    catalog = {name: [extract_local_features(images[name])] for name in sorted(images)}
    candidates = sorted(images)[:CANDIDATES]
    view_jpeg = focus_view_jpeg(frame, VIEW_BYTES)
    view = decode_focus_view(view_jpeg)
    runs = {
        "ours": lambda: ours.embed([frame]),
        "plain": lambda: plain.embed([frame]),
        "focus": lambda: ours.embed([focus_crop(frame)]),
        "view": lambda: focus_view_jpeg(frame, VIEW_BYTES),
        "worker_focus": lambda: worker.embed(focus_views(decode_focus_view(view_jpeg))),
        "verify": _on_one_core(  # the worker's own step
            lambda: verify_view(
                [Match(name, "", None, "EUR", True, 0.5) for name in candidates],
                view,
                catalog.__getitem__,
            )
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(2):  # interleaved against drift
        for name, run in runs.items():
            times[name].append(median_seconds(run, repeat=20) * 1000)
    return {name: min(samples) for name, samples in times.items()} | {"view_bytes": len(view_jpeg)}


def _on_one_core(run: Callable[[], object]) -> Callable[[], None]:
    """``run`` with OpenCV held to one thread (it uses every core by default), so the
    figure is a core's work per message, the measure of a worker's throughput."""

    def once() -> None:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            run()
        finally:
            cv2.setNumThreads(threads)

    return once


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
