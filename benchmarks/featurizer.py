"""Featurizer speed: ONNX FP32/FP16/INT8 against the PyTorch eager model, same run, same inputs;
then one frame at a time at a camera's pace, with the default two threads (which busy-wait
between runs) against one thread: the CPU a device's featurizer takes from its other work.

Inputs are camera-like views of real photos, already preprocessed, so the figures
are the network alone; preprocessing is timed on its own line. Each model is timed
in interleaved rounds (to spread any drift of the machine evenly) and the median
of the rounds is reported.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np

from benchmarks.common import common_arguments, median_seconds, p50_p99, publish
from edgelens.featurizer.preprocess import PreprocessSpec, to_model_input
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.samples.views import camera_views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fps", type=float, default=15.0, help="the paced table's frame rate")
    parser.add_argument("--paced-frames", type=int, default=150)
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from edgelens.models.torch_model import EmbeddingModel, load_pretrained

    torch.set_num_threads(args.threads)
    spec = PreprocessSpec()
    frames = [v for p in SAMPLE_PHOTOS for v in camera_views(load_photo(p.loader), 2, seed=77)]
    batch32 = to_model_input(frames[:32], spec)
    batch1 = batch32[:1]

    eager = EmbeddingModel(load_pretrained()).eval()

    def torch_run(batch: np.ndarray):
        with torch.inference_mode():
            return eager(torch.from_numpy(batch))

    runners = {"PyTorch eager (FP32)": torch_run}
    for precision in ("fp32", "fp16", "int8"):
        featurizer = Featurizer.from_models_dir(
            args.models_dir, precision, providers=["cpu"], threads=args.threads
        )
        runners[f"ONNX {precision.upper()}"] = featurizer.embed_batch

    results: dict[str, dict[int, list[float]]] = {name: {1: [], 32: []} for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            results[name][1].append(median_seconds(lambda r=run: r(batch1), repeat=20) * 1000)
            results[name][32].append(
                median_seconds(lambda r=run: r(batch32), repeat=2, warmup=1) * 1000 / 32
            )
    ms = {name: {b: statistics.median(v) for b, v in per.items()} for name, per in results.items()}
    base = ms["PyTorch eager (FP32)"]
    prep = median_seconds(lambda: to_model_input(frames[:1], spec), repeat=50) * 1000

    lines = [
        f"Batch 1 and batch 32, onnxruntime CPU provider, {args.threads} threads; torch "
        f"{torch.__version__} with {args.threads} threads. Inputs: 32 preprocessed camera views "
        f"of the scikit-image photos. Median of {args.rounds} interleaved rounds.",
        "",
        "| model | ms/image b1 | images/s b1 | ms/image b32 | images/s b32 "
        "| speed-up b1 | speed-up b32 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, per in ms.items():
        lines.append(
            f"| {name} | {per[1]:.2f} | {1000 / per[1]:.0f} | {per[32]:.2f} | "
            f"{1000 / per[32]:.0f} | {base[1] / per[1]:.2f}x | {base[32] / per[32]:.2f}x |"
        )
    lines += ["", f"Preprocessing of one 640x480 frame (resize, crop, normalise): {prep:.2f} ms."]
    lines += ["", *_paced(args, batch1)]
    body = "\n".join(lines)
    publish("featurizer-speed", "## Featurizer speed\n\n" + body, write=not args.no_write)


PACED = (  # (label, threads)
    ("2 (the default)", 2),
    ("1", 1),
)


def _paced(args: argparse.Namespace, batch1: np.ndarray) -> list[str]:
    """One frame at a time at ``args.fps``, as a device's camera delivers them: latency per
    frame and the process's CPU time per frame, for each way of running the threads."""
    featurizers = {
        (precision, label): Featurizer.from_models_dir(
            args.models_dir, precision, providers=["cpu"], threads=threads
        )
        for precision in ("fp32", "int8")
        for label, threads in PACED
    }
    latency: dict[tuple[str, str], list[float]] = {key: [] for key in featurizers}
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in featurizers}
    back_to_back: dict[tuple[str, str], list[float]] = {key: [] for key in featurizers}
    period = 1 / args.fps
    for _ in range(max(1, args.rounds // 2)):
        for key, featurizer in featurizers.items():
            run = featurizer.embed_batch
            median_seconds(lambda r=run: r(batch1), repeat=3)  # warm
            back_to_back[key].append(median_seconds(lambda r=run: r(batch1), repeat=20) * 1000)
            cpu_start, start = time.process_time(), time.perf_counter()
            for frame in range(args.paced_frames):
                began = time.perf_counter()
                run(batch1)
                latency[key].append((time.perf_counter() - began) * 1000)
                time.sleep(max(0.0, start + (frame + 1) * period - time.perf_counter()))
            cpu[key].append((time.process_time() - cpu_start) * 1000 / args.paced_frames)
    lines = [
        f"One frame at a time at {args.fps:g} fps, as a camera delivers them to the device loop "
        f"({args.paced_frames} frames a round, {max(1, args.rounds // 2)} interleaved rounds, "
        "pooled): the time of each run, and this process's CPU time per frame (what the "
        "featurizer takes from the device's other work, or from a worker on the same machine). "
        "Back-to-back: batch 1 with no pause, median. ONNX Runtime CPU provider; threads: "
        "featurizer.threads, onnxruntime's intra-op pool, whose threads busy-wait for the next "
        "run (onnxruntime's default; stopping them between runs was slower than one thread, "
        "docs/decisions.md).",
        "",
        "| model | threads | paced p50 ms | paced p99 ms | CPU ms per frame | share of a core "
        f"at {args.fps:g} fps | back-to-back ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (precision, label), values in latency.items():
        per_frame = statistics.median(cpu[precision, label])
        lines.append(
            f"| ONNX {precision.upper()} | {label} | {p50_p99(values, digits=2, between=' | ')} | "
            f"{per_frame:.1f} | "
            f"{per_frame * args.fps / 1000:.0%} | "
            f"{statistics.median(back_to_back[precision, label]):.2f} |"
        )
    return lines


if __name__ == "__main__":
    main()
