"""onnxruntime execution-provider choice: TensorRT, then CUDA, then CPU.

Only providers that this onnxruntime build actually offers are requested; the
one that ends up running is logged by the featurizer, because a silent fall
back to CPU on a Jetson is the most common cause of "it is slow".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

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


def _provider_options(short: str, precision: str, cache_dir: Path) -> dict[str, str]:
    if short != "tensorrt":
        return {}
    # The engine is built once per device and model, then loaded from the cache.
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        "trt_fp16_enable": "True" if precision in ("fp16", "int8") else "False",
        "trt_int8_enable": "True" if precision == "int8" else "False",
    }
