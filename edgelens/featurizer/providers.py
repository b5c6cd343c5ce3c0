"""onnxruntime execution-provider choice: TensorRT, then CUDA, then CPU.

Only providers that this onnxruntime build actually offers are requested; the
one that ends up running is logged by the featurizer, because a silent fall
back to CPU on a Jetson is the most common cause of "it is slow".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

# File names ORT's TensorRT provider gives the engines it serialises into its cache.
ENGINE_SUFFIX = ".engine"

ORT_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def select_providers(
    *,
    preferred: Sequence[str],
    available: Iterable[str],
    precision: str,
    cache_dir: Path,
) -> list[tuple[str, dict[str, str]]]:
    """Return (provider, options) pairs in preference order, CPU always last as the safety net."""
    offered = set(available)
    chosen: list[tuple[str, dict[str, str]]] = []
    for short in preferred:
        ort_name = ORT_NAMES[short]
        if ort_name not in offered or any(name == ort_name for name, _ in chosen):
            continue
        chosen.append((ort_name, _provider_options(short, precision, cache_dir)))
    if not any(name == ORT_NAMES["cpu"] for name, _ in chosen):
        chosen.append((ORT_NAMES["cpu"], {}))
    return chosen


def engine_cache_dir(cache_root: Path, model_id: str) -> Path:
    """Where TensorRT engines of one model live: a folder per model id, so an engine is
    built once per device and model and a new model never loads a stale engine."""
    return cache_root / model_id


def has_cached_engine(cache_dir: Path) -> bool:
    """Whether a TensorRT engine was already built into ``cache_dir`` (a start in seconds,
    not the minutes a first build takes on a Jetson)."""
    return cache_dir.is_dir() and any(cache_dir.glob(f"*{ENGINE_SUFFIX}"))


def _provider_options(short: str, precision: str, cache_dir: Path) -> dict[str, str]:
    if short == "cuda":
        # The exhaustive cuDNN search costs seconds at every start on a Jetson for no
        # measurable gain on this small network.
        return {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC"}
    if short != "tensorrt":
        return {}
    # The engine is built once per device and model, then loaded from the cache. An INT8
    # model carries its scales as QDQ nodes, so TensorRT needs no calibration table.
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_fp16_enable": "True" if precision in ("fp16", "int8") else "False",
        "trt_int8_enable": "True" if precision == "int8" else "False",
    }
