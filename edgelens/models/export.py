"""EfficientNet-Lite0 → ONNX featurizer in FP32, FP16 and INT8, each with its manifest.

Both poolings (the product's sharpened regional GeM, the global-average baseline) are
exported in each precision; FP16 and INT8 derive from FP32, and a derived model's manifest
records its mean cosine to FP32 on views that neither calibration nor evaluation uses.
Export is deterministic (same packages → same bytes → same model id) and is
skipped when the artefact already exists, so ``make test`` pays for it once.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

import numpy as np
import onnx

from edgelens.featurizer.manifest import (
    EMBEDDING_OUTPUT,
    INPUT_NAME,
    LOGITS_OUTPUT,
    MODEL_NAME,
    POOLINGS,
    ModelManifest,
    artefact_paths,
    compute_model_id,
)
from edgelens.featurizer.preprocess import PreprocessSpec
from edgelens.models.calibration import calibration_batches
from edgelens.settings import Precision

logger = logging.getLogger(__name__)

PRECISIONS = get_args(Precision)
OPSET = 17
EMBEDDING_DIM = 1280
NUM_CLASSES = 1000
AGREEMENT_SEED = 9_000  # disjoint from calibration (7_000) and evaluation seeds


def export_models(
    models_dir: Path,
    precisions: Iterable[str] = PRECISIONS,
    *,
    poolings: Iterable[str] = POOLINGS,
    force: bool = False,
) -> list[ModelManifest]:
    """Export each pooling (product and baseline) in each requested precision.

    FP32 goes first: FP16 and INT8 derive from it.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    spec = PreprocessSpec()
    wanted = list(dict.fromkeys(precisions))
    unknown = (set(wanted) - set(PRECISIONS)) | (set(poolings) - set(POOLINGS))
    if unknown:
        raise ValueError(f"unknown precision(s) or pooling(s): {sorted(unknown)}")
    manifests = []
    for pooling in poolings:
        fp32_path, _ = artefact_paths(models_dir, "fp32", pooling)
        for precision in ("fp32", *[p for p in wanted if p != "fp32"]):
            onnx_path, manifest_path = artefact_paths(models_dir, precision, pooling)
            exists = onnx_path.is_file() and manifest_path.is_file()
            if exists and not force and not (precision == "int8" and _slow_int8(onnx_path)):
                logger.info("model %s exists, skipping export", onnx_path.name)
                manifest = ModelManifest.load(manifest_path)
            else:
                if precision == "fp32":
                    _export_fp32(onnx_path, pooling)
                elif precision == "fp16":
                    _convert_fp16(fp32_path, onnx_path)
                else:
                    from edgelens.models.quantize import quantize_int8

                    quantize_int8(fp32_path, onnx_path, spec)
                manifest = _write_manifest(
                    onnx_path, manifest_path, precision, pooling, spec, fp32_path
                )
                logger.info("exported %s (%s)", onnx_path.name, manifest.model_id)
            if precision in wanted:
                manifests.append(manifest)
    return manifests


def _slow_int8(onnx_path: Path) -> bool:
    from edgelens.models.quantize import padding_left

    if not padding_left(onnx_path):
        return False
    logger.warning(
        "%s keeps its padding subgraphs (runs slower than FP32): exporting it again", onnx_path.name
    )
    return True


def _export_fp32(onnx_path: Path, pooling: str) -> None:
    import torch

    from edgelens.models.torch_model import EmbeddingModel, load_pretrained

    model = EmbeddingModel(load_pretrained(), pooling).eval()
    example = torch.zeros(1, 3, 224, 224)
    batch_axis = {0: "batch"}
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / onnx_path.name
        # The TorchScript exporter (dynamo=False) is used because its output is
        # byte-for-byte reproducible, which the content-hash model id relies on.
        torch.onnx.export(
            model,
            (example,),
            str(staged),
            input_names=[INPUT_NAME],
            output_names=[EMBEDDING_OUTPUT, LOGITS_OUTPUT],
            dynamic_axes={
                INPUT_NAME: batch_axis,
                EMBEDDING_OUTPUT: batch_axis,
                LOGITS_OUTPUT: batch_axis,
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        onnx.checker.check_model(str(staged))
        staged.replace(onnx_path)


def _convert_fp16(fp32_path: Path, onnx_path: Path) -> None:
    """FP16 weights and activations with float32 inputs/outputs, so callers are unchanged."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    _save_atomically(model, onnx_path)


def _save_atomically(model: onnx.ModelProto, onnx_path: Path) -> None:
    staged = onnx_path.with_suffix(".tmp")
    onnx.save(model, str(staged))
    staged.replace(onnx_path)


def _write_manifest(
    onnx_path: Path,
    manifest_path: Path,
    precision: str,
    pooling: str,
    spec: PreprocessSpec,
    fp32_path: Path,
) -> ModelManifest:
    data = onnx_path.read_bytes()
    derived = precision != "fp32"
    fp32 = ModelManifest.load(fp32_path.with_suffix(".json")) if derived else None
    model_id = compute_model_id(
        name=f"{MODEL_NAME}-{pooling}", precision=precision, onnx_bytes=data, spec=spec
    )
    manifest = ModelManifest(
        model_id=model_id,
        name=MODEL_NAME,
        precision=precision,
        onnx_file=onnx_path.name,
        onnx_sha256=hashlib.sha256(data).hexdigest(),
        embedding_dim=EMBEDDING_DIM,
        num_classes=NUM_CLASSES,
        preprocess=spec,
        pooling=pooling,
        embedding_space=fp32.model_id if fp32 else model_id,
        fp32_cosine=_agreement(fp32_path, onnx_path) if derived else 1.0,
    )
    manifest.save(manifest_path)
    return manifest


def _agreement(fp32_path: Path, onnx_path: Path) -> float:
    """Mean cosine between this model's and the FP32 model's vectors on camera views that
    neither calibration nor evaluation uses."""
    batches = calibration_batches(PreprocessSpec(), views_per_photo=2, seed=AGREEMENT_SEED)
    batch = np.concatenate(batches)
    vectors = [_session_embed(path, batch) for path in (fp32_path, onnx_path)]
    return round(float(np.mean(np.sum(vectors[0] * vectors[1], axis=1))), 4)


def _session_embed(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run([EMBEDDING_OUTPUT], {INPUT_NAME: batch})
    return np.asarray(out, dtype=np.float32)
