from pathlib import Path

import pytest

from edgelens.featurizer.providers import engine_cache_dir, has_cached_engine, select_providers

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


def test_cuda_skips_the_exhaustive_cudnn_search(tmp_path: Path):
    chosen = select_providers(
        preferred=["cuda", "cpu"], available=ALL, precision="fp32", cache_dir=tmp_path
    )
    assert chosen[0] == (
        "CUDAExecutionProvider",
        {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC"},
    )
    assert chosen[1] == ("CPUExecutionProvider", {})


def test_fp32_keeps_tensorrt_in_fp32(tmp_path: Path):
    (name, options), *_ = select_providers(
        preferred=["tensorrt"], available=ALL, precision="fp32", cache_dir=tmp_path
    )
    assert name == "TensorrtExecutionProvider"
    assert (options["trt_fp16_enable"], options["trt_int8_enable"]) == ("False", "False")


def test_engine_cache_is_one_folder_per_model_and_knows_when_an_engine_is_built(tmp_path: Path):
    fp16 = engine_cache_dir(tmp_path, "efficientnet-lite0-fp16-abc")
    int8 = engine_cache_dir(tmp_path, "efficientnet-lite0-int8-def")
    assert fp16 != int8 and fp16.parent == int8.parent == tmp_path
    assert not has_cached_engine(fp16)  # not even created yet
    fp16.mkdir()
    (fp16 / "TensorrtExecutionProvider_TRTKernel_graph_1_0.profile").write_bytes(b"x")
    assert not has_cached_engine(fp16), "a profile alone is not an engine"
    (fp16 / "TensorrtExecutionProvider_TRTKernel_graph_1_0_sm87.engine").write_bytes(b"x")
    assert has_cached_engine(fp16) and not has_cached_engine(int8)
    chosen = select_providers(
        preferred=["tensorrt"], available=ALL, precision="fp16", cache_dir=fp16
    )
    assert chosen[0][1]["trt_engine_cache_path"] == str(fp16)


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_featurizer_prepares_its_engine_cache_when_tensorrt_is_chosen(
    models_dir: Path, tmp_path: Path, monkeypatch, caplog
):
    """This machine has no TensorRT: the build is told it has, and onnxruntime then runs
    the CPU provider, as it does on a Jetson whose TensorRT libraries fail to load."""
    import logging

    import onnxruntime as ort

    from edgelens.featurizer.runtime import Featurizer

    monkeypatch.setattr(ort, "get_available_providers", lambda: ALL)
    caplog.set_level(logging.INFO, logger="edgelens.featurizer")
    featurizer = Featurizer.from_models_dir(
        models_dir, "fp16", providers=["tensorrt", "cpu"], cache_dir=tmp_path
    )
    engines = tmp_path / featurizer.model_id
    assert engines.is_dir() and featurizer.engine_cached is False
    assert f"not built yet; the first run builds it into {engines}" in caplog.text
    assert featurizer.provider == "CPUExecutionProvider"
    assert "runs on CPUExecutionProvider" in caplog.text
    assert "TensorrtExecutionProvider could not start" in caplog.text

    plain = Featurizer.from_models_dir(models_dir, "fp16", providers=["cpu"], cache_dir=tmp_path)
    assert plain.engine_cached is None
