"""The exported artefacts: deterministic, skipped when present, faithful to the torch model."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgelens.featurizer.manifest import ModelManifest, artefact_paths
from edgelens.featurizer.preprocess import PreprocessSpec, to_model_input

torch = pytest.importorskip("torch", reason="export tests need the [export] extra")

from edgelens.models.export import export_models  # noqa: E402


def test_manifests_describe_each_precision(models_dir: Path):
    ids = set()
    for precision in ("fp32", "fp16", "int8"):
        onnx_path, manifest_path = artefact_paths(models_dir, precision)
        manifest = ModelManifest.load(manifest_path)
        raw = json.loads(manifest_path.read_text())
        assert manifest.precision == precision
        assert manifest.embedding_dim == 1280
        assert raw["preprocess"]["color_order"] == "RGB"
        assert raw["preprocess"]["input_size"] == 224
        assert raw["preprocess"]["mean_rgb"] == [0.485, 0.456, 0.406]
        assert manifest.onnx_sha256 == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        ids.add(manifest.model_id)
    assert len(ids) == 3, "each precision is its own model id"


@pytest.mark.parametrize("pooling", ["rgem", "gap"])
def test_int8_folds_the_padding_into_its_convolutions(models_dir: Path, pooling: str):
    """What makes INT8 faster than FP32 on a CPU: without it (onnxruntime 1.25's
    pre-processing left every static-padding subgraph in place) INT8 ran slower than FP32."""
    import onnx

    onnx_path, _ = artefact_paths(models_dir, "int8", pooling)
    ops = {node.op_type for node in onnx.load(str(onnx_path)).graph.node}
    assert "Pad" not in ops and "ConstantOfShape" not in ops
    assert "QLinearConv" in ops or "DequantizeLinear" in ops, "quantised"


def test_export_is_deterministic_and_skipped_when_present(tmp_path: Path, models_dir: Path):
    first = export_models(tmp_path / "a", ["fp32"])[0]
    second = export_models(tmp_path / "b", ["fp32"])[0]
    assert first.model_id == second.model_id
    assert first.onnx_sha256 == second.onnx_sha256
    shipped = ModelManifest.load(artefact_paths(models_dir, "fp32")[1])
    assert shipped.model_id == first.model_id

    onnx_path, _ = artefact_paths(tmp_path / "a", "fp32")
    before = onnx_path.stat().st_mtime_ns
    again = export_models(tmp_path / "a", ["fp32"])[0]
    assert onnx_path.stat().st_mtime_ns == before
    assert again == first


def test_onnx_embedding_matches_the_pytorch_model(featurizer, chelsea):
    from edgelens.models.torch_model import EmbeddingModel, load_pretrained

    model = EmbeddingModel(load_pretrained()).eval()
    batch = to_model_input([chelsea], PreprocessSpec())
    with torch.no_grad():
        expected, logits = model(torch.from_numpy(batch))
    got = featurizer.embed([chelsea])
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(featurizer.classify([chelsea]), logits.numpy(), atol=1e-2)


def test_unknown_precision_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="int4"):
        export_models(tmp_path, ["int4"])
