"""The exported artefacts: deterministic, skipped when present, faithful to the torch model."""

import hashlib
import json
import shutil
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
    pre-processing left every static-padding subgraph in place) INT8 ran slower than FP32,
    and an export that finds such a file makes it again."""
    from edgelens.models.quantize import padding_left

    assert padding_left(artefact_paths(models_dir, "fp32", pooling)[0]), "FP32 has them"
    assert not padding_left(artefact_paths(models_dir, "int8", pooling)[0])


def test_an_int8_file_with_its_padding_left_is_exported_again(
    tmp_path: Path, models_dir: Path, caplog
):
    """A slow INT8 file (here stood in for by FP32's graph, whose Pads are all there) is
    not skipped as present: the export makes it again."""
    from edgelens.models.quantize import padding_left

    for precision in ("fp32", "int8"):
        for path in artefact_paths(models_dir, precision):
            shutil.copyfile(path, tmp_path / path.name)
    slow, _ = artefact_paths(tmp_path, "int8")
    shutil.copyfile(artefact_paths(models_dir, "fp32")[0], slow)
    (manifest,) = export_models(tmp_path, ["int8"], poolings=["rgem"])
    assert "keeps its padding subgraphs" in caplog.text
    assert not padding_left(slow)
    assert manifest.onnx_sha256 == hashlib.sha256(slow.read_bytes()).hexdigest()


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
