"""Featurizer on an NVIDIA GPU: onnxruntime's accelerated providers against its CPU
provider on the same machine, in the same run, on the same inputs.

The device asks for TensorRT, then CUDA, then CPU (``edgelens.featurizer.providers``);
this reports which provider each model actually got, its speed at batch 1 (a camera)
and batch 32 (a catalog import), and whether its vectors are the CPU's: a catalog is
usually indexed on a CPU machine and searched with vectors from a GPU device, so the
two must agree (cosine to the CPU vectors of the same model, and the same nearest
catalog photo).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
from typing import get_args

import numpy as np

from benchmarks.common import common_arguments, median_seconds, publish
from edgelens.featurizer.preprocess import PreprocessSpec, to_model_input
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.samples.views import camera_views
from edgelens.settings import Precision

PRECISIONS = get_args(Precision)
ACCELERATED = ["tensorrt", "cuda", "cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 1)
    common_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    spec = PreprocessSpec()
    photos = [load_photo(p.loader) for p in SAMPLE_PHOTOS]
    views = [v for photo in photos for v in camera_views(photo, 2, seed=77)]
    batch = to_model_input(views, spec)
    batch32, batch1 = batch[:32], batch[:1]

    runners: dict[tuple[str, str], Featurizer] = {}
    for precision in PRECISIONS:
        for label, providers in (("CPU", ["cpu"]), ("GPU", ACCELERATED)):
            runners[precision, label] = Featurizer.from_models_dir(
                args.models_dir, precision, providers=providers, threads=args.cpu_threads
            )

    timings: dict[tuple[str, str], dict[int, list[float]]] = {k: {1: [], 32: []} for k in runners}
    for _ in range(args.rounds):  # interleaved rounds spread any drift over every runner
        for key, featurizer in runners.items():
            run = featurizer.embed_batch
            timings[key][1].append(median_seconds(lambda r=run: r(batch1), repeat=50) * 1000)
            timings[key][32].append(
                median_seconds(lambda r=run: r(batch32), repeat=5, warmup=2) * 1000 / 32
            )
    ms = {k: {b: statistics.median(v) for b, v in per.items()} for k, per in timings.items()}

    catalog = runners["fp32", "CPU"].embed(photos)  # one vector per photo, indexed on a CPU
    vectors = {k: f.embed_batch(batch) for k, f in runners.items()}
    labels = np.repeat(np.arange(len(photos)), 2)
    prep = median_seconds(lambda: to_model_input(views[:1], spec), repeat=50) * 1000

    lines = [
        f"Accelerator: {_gpu_name()}; onnxruntime {_ort_version()}; CPU provider with "
        f"{args.cpu_threads} threads on the same machine. Inputs: {len(views)} preprocessed "
        f"camera views of the scikit-image photos; median of {args.rounds} interleaved rounds. "
        "Requested providers for the GPU rows: TensorRT, CUDA, CPU; the provider column is "
        "the one onnxruntime started. Cosine and top-1 agreement compare each model's GPU "
        "vectors with its CPU vectors of the same inputs; catalog top-1 is the share of views "
        "whose nearest catalog photo (indexed with FP32 on the CPU) is their own.",
        "",
        "| model | provider | ms/image b1 | images/s b1 | ms/image b32 | images/s b32 "
        "| GPU speed-up b1 / b32 | cosine to CPU, mean / min | same top-1 as CPU "
        "| catalog top-1 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (precision, label), featurizer in runners.items():
        per, cpu = ms[precision, label], ms[precision, "CPU"]
        own = _unit(vectors[precision, label])
        cosine = np.sum(own * _unit(vectors[precision, "CPU"]), axis=1)
        top1 = np.argmax(own @ catalog.T, axis=1)
        cpu_top1 = np.argmax(vectors[precision, "CPU"] @ catalog.T, axis=1)
        speedup = f"{cpu[1] / per[1]:.1f}x / {cpu[32] / per[32]:.1f}x" if label == "GPU" else "1.0x"
        lines.append(
            f"| {precision.upper()} | {featurizer.provider.removesuffix('ExecutionProvider')} "
            f"| {per[1]:.2f} | {1000 / per[1]:.0f} | {per[32]:.3f} | {1000 / per[32]:.0f} "
            f"| {speedup} | {cosine.mean():.5f} / {cosine.min():.5f} "
            f"| {np.mean(top1 == cpu_top1):.3f} | {np.mean(top1 == labels):.3f} |"
        )
    best = min(ms[p, "GPU"][1] for p in PRECISIONS)
    lines += [
        "",
        f"Preprocessing of one 640x480 frame on the CPU: {prep:.2f} ms, so a camera loop "
        f"on this machine is bound at about {1000 / (prep + best):.0f} frames/s by "
        "preprocessing + the fastest GPU model at batch 1.",
    ]
    body = "\n".join(lines)
    publish("featurizer-gpu", "## Featurizer on a GPU\n\n" + body, write=not args.no_write)


def _unit(vectors: np.ndarray) -> np.ndarray:
    """FP16 outputs are unit length only to FP16 precision; compare directions alone."""
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _gpu_name() -> str:
    if not shutil.which("nvidia-smi"):
        return "none found"
    query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
    out = subprocess.run(query, capture_output=True, text=True, check=False).stdout.strip()
    name, _, driver = out.partition(",")
    return f"{name.strip()} (driver {driver.strip()})" if out else "unknown"


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
