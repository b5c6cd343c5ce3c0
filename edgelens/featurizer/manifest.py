"""The manifest that travels with every exported model.

The model id is a content hash of the ONNX graph and the preprocessing, so two
artefacts that would produce different vectors can never share an id, and the
same export always yields the same id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from edgelens.errors import ModelError, ModelNotFoundError
from edgelens.featurizer.preprocess import PreprocessSpec
from edgelens.settings import Pooling

MODEL_NAME = "efficientnet-lite0"
POOLINGS = get_args(Pooling)
DEFAULT_POOLING = "rgem"
# Mean cosine to FP32 above which a derived model's vectors search an FP32 catalog.
COMPATIBLE_COSINE = 0.98
EMBEDDING_OUTPUT = "embedding"
LOGITS_OUTPUT = "logits"
INPUT_NAME = "images"


def compute_model_id(*, name: str, precision: str, onnx_bytes: bytes, spec: PreprocessSpec) -> str:
    digest = hashlib.sha256()
    digest.update(onnx_bytes)
    digest.update(json.dumps(spec.to_dict(), sort_keys=True).encode())
    return f"{name}-{precision}-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class ModelManifest:
    model_id: str
    name: str
    precision: str
    onnx_file: str
    onnx_sha256: str
    embedding_dim: int
    num_classes: int
    preprocess: PreprocessSpec
    pooling: str = DEFAULT_POOLING
    # The FP32 model this one was derived from, and how closely its vectors agree with it
    # (mean cosine on held-out camera views, measured at export): the worker searches a
    # catalog featurized in FP32 with this model's vectors only when they agree closely.
    embedding_space: str = ""
    fp32_cosine: float = 1.0
    input_name: str = INPUT_NAME
    embedding_output: str = EMBEDDING_OUTPUT
    logits_output: str = LOGITS_OUTPUT

    def to_dict(self) -> dict[str, object]:
        return {
            "model_id": self.model_id,
            "name": self.name,
            "precision": self.precision,
            "onnx_file": self.onnx_file,
            "onnx_sha256": self.onnx_sha256,
            "embedding_dim": self.embedding_dim,
            "num_classes": self.num_classes,
            "preprocess": self.preprocess.to_dict(),
            "pooling": self.pooling,
            "embedding_space": self.embedding_space,
            "fp32_cosine": self.fp32_cosine,
            "input_name": self.input_name,
            "embedding_output": self.embedding_output,
            "logits_output": self.logits_output,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        """A manifest from its JSON; ModelError saying why if it is not one."""
        try:
            return cls._from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"invalid model manifest: {exc!r}") from exc

    @classmethod
    def load(cls, path: Path) -> ModelManifest:
        try:
            return cls._from_dict(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise ModelNotFoundError(f"no model manifest at {path}") from exc
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"invalid model manifest {path}: {exc!r}") from exc

    @classmethod
    def _from_dict(cls, data: dict) -> ModelManifest:
        return cls(
            model_id=data["model_id"],
            name=data["name"],
            precision=data["precision"],
            onnx_file=data["onnx_file"],
            onnx_sha256=data["onnx_sha256"],
            embedding_dim=int(data["embedding_dim"]),
            num_classes=int(data["num_classes"]),
            preprocess=PreprocessSpec.from_dict(data["preprocess"]),
            pooling=data["pooling"],
            embedding_space=data["embedding_space"],
            fp32_cosine=float(data["fp32_cosine"]),
            input_name=data["input_name"],
            embedding_output=data["embedding_output"],
            logits_output=data["logits_output"],
        )


def searchable_against(manifest: ModelManifest, catalog_model_id: str) -> tuple[bool, str]:
    """Whether vectors of ``manifest``'s model may be searched in a catalog indexed with
    ``catalog_model_id``, and why not when they may not."""
    if manifest.model_id == catalog_model_id:
        return True, ""
    if manifest.embedding_space != catalog_model_id:
        return False, f"{manifest.model_id} is another embedding space than {catalog_model_id}"
    if manifest.fp32_cosine < COMPATIBLE_COSINE:
        return False, (
            f"{manifest.model_id} vectors agree with {catalog_model_id} only to mean cosine "
            f"{manifest.fp32_cosine:.3f} (< {COMPATIBLE_COSINE}); index the catalog in "
            f"{manifest.precision} instead"
        )
    return True, ""


def artefact_paths(
    models_dir: Path, precision: str, pooling: str = DEFAULT_POOLING
) -> tuple[Path, Path]:
    """Where the ONNX file and its manifest for one pooling and precision live."""
    stem = f"{MODEL_NAME}-{pooling}-{precision}"
    return models_dir / f"{stem}.onnx", models_dir / f"{stem}.json"


def all_manifests(models_dir: Path) -> list[ModelManifest]:
    """Every exported model's manifest in ``models_dir``."""
    return [ModelManifest.load(path) for path in sorted(models_dir.glob(f"{MODEL_NAME}-*.json"))]


def load_manifest(
    models_dir: Path, precision: str, pooling: str = DEFAULT_POOLING
) -> ModelManifest:
    onnx_path, manifest_path = artefact_paths(models_dir, precision, pooling)
    if not manifest_path.is_file() or not onnx_path.is_file():
        raise ModelNotFoundError(
            f"no {pooling} {precision} model in {models_dir}; run `edgelens model export` first"
        )
    return ModelManifest.load(manifest_path)
