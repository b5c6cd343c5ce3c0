from pathlib import Path

from edgelens.featurizer.providers import select_providers

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def _names(chosen):
    return [name for name, _ in chosen]


def test_tensorrt_then_cuda_then_cpu_when_all_are_offered(tmp_path: Path):
    chosen = select_providers(
        preferred=["tensorrt", "cuda", "cpu"], available=ALL, precision="fp16", cache_dir=tmp_path
    )
    assert _names(chosen) == ALL
    trt_options = chosen[0][1]
    assert trt_options["trt_engine_cache_enable"] == "True"
    assert trt_options["trt_engine_cache_path"] == str(tmp_path)
    assert trt_options["trt_fp16_enable"] == "True"
    assert trt_options["trt_int8_enable"] == "False"


def test_providers_missing_from_the_build_are_skipped(tmp_path: Path):
    chosen = select_providers(
        preferred=["tensorrt", "cuda", "cpu"],
        available=["CUDAExecutionProvider", "CPUExecutionProvider"],
        precision="fp32",
        cache_dir=tmp_path,
    )
    assert _names(chosen) == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cpu_is_always_the_last_resort(tmp_path: Path):
    chosen = select_providers(
        preferred=["tensorrt"],
        available=["CPUExecutionProvider"],
        precision="int8",
        cache_dir=tmp_path,
    )
    assert _names(chosen) == ["CPUExecutionProvider"]


def test_int8_enables_tensorrt_int8_with_fp16_fallback(tmp_path: Path):
    chosen = select_providers(
        preferred=["tensorrt", "cpu"], available=ALL, precision="int8", cache_dir=tmp_path
    )
    assert chosen[0][1]["trt_int8_enable"] == "True"
    assert chosen[0][1]["trt_fp16_enable"] == "True"
    assert _names(chosen) == ["TensorrtExecutionProvider", "CPUExecutionProvider"]
