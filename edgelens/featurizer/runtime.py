"""Batched ONNX inference for the featurizer."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgelens.errors import ModelError
from edgelens.featurizer.manifest import (
    DEFAULT_POOLING,
    ModelManifest,
    artefact_paths,
    load_manifest,
)
from edgelens.featurizer.preprocess import to_model_input
from edgelens.featurizer.providers import (
    ORT_NAMES,
    engine_cache_dir,
    has_cached_engine,
    select_providers,
)
from edgelens.settings import Settings

logger = logging.getLogger(__name__)


class Featurizer:
    """Turns BGR images into L2-normalised embeddings with one exported model.

    The model id of every vector it makes is :attr:`model_id`; callers attach it
    to whatever they store or send so vectors of two models never meet.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        onnx_path: Path,
        *,
        providers: Sequence[str] = ("tensorrt", "cuda", "cpu"),
        threads: int = 2,
        batch_size: int = 16,
        cache_dir: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.batch_size = batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        engines = engine_cache_dir(cache_dir or onnx_path.parent / "trt-cache", manifest.model_id)
        chosen = select_providers(
            preferred=providers,
            available=ort.get_available_providers(),
            precision=manifest.precision,
            cache_dir=engines,
        )
        # None when TensorRT is not in play; else whether its engine was already built.
        self.engine_cached: bool | None = None
        if chosen[0][0] == ORT_NAMES["tensorrt"]:
            engines.mkdir(parents=True, exist_ok=True)
            self.engine_cached = has_cached_engine(engines)
            logger.info(
                "TensorRT engine for %s: %s",
                manifest.model_id,
                f"cached in {engines}"
                if self.engine_cached
                else f"not built yet; the first run builds it into {engines} (minutes)",
            )
        try:
            self._session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=chosen
            )
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise ModelError(f"cannot load {onnx_path}: {exc}") from exc
        self.provider = self._session.get_providers()[0]
        if self.provider != chosen[0][0]:
            logger.warning(
                "%s could not start (missing libraries?); %s runs instead",
                chosen[0][0],
                self.provider,
            )
        logger.info(
            "featurizer %s runs on %s (requested %s, %d threads)",
            manifest.model_id,
            self.provider,
            [name for name, _ in chosen],
            threads,
        )

    @classmethod
    def from_models_dir(
        cls, models_dir: Path, precision: str, pooling: str = DEFAULT_POOLING, **kwargs: object
    ) -> Featurizer:
        manifest = load_manifest(models_dir, precision, pooling)
        onnx_path, _ = artefact_paths(models_dir, precision, pooling)
        return cls(manifest, onnx_path, **kwargs)  # type: ignore[arg-type]

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    @property
    def dim(self) -> int:
        return self.manifest.embedding_dim

    def embed(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings as a float32 (N, dim) array of unit vectors, in input order."""
        return self._run(images_bgr, self.manifest.embedding_output)

    def classify(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """ImageNet logits (N, 1000); used to prove the exported weights are the real ones."""
        return self._run(images_bgr, self.manifest.logits_output)

    def preprocess(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """The model input for these images: the one shared preprocessing, as NCHW float32."""
        return to_model_input(images_bgr, self.manifest.preprocess)

    def embed_batch(self, batch_nchw: np.ndarray) -> np.ndarray:
        """Run an already preprocessed batch (callers that time the two stages apart)."""
        (out,) = self._session.run(
            [self.manifest.embedding_output], {self.manifest.input_name: batch_nchw}
        )
        return np.asarray(out, dtype=np.float32)

    def _run(self, images_bgr: Sequence[np.ndarray], output: str) -> np.ndarray:
        if not images_bgr:
            return np.empty((0, self.dim), dtype=np.float32)
        parts = []
        for start in range(0, len(images_bgr), self.batch_size):
            batch = self.preprocess(images_bgr[start : start + self.batch_size])
            (out,) = self._session.run([output], {self.manifest.input_name: batch})
            parts.append(np.asarray(out, dtype=np.float32))
        return np.concatenate(parts)


def load_featurizer(
    settings: Settings, manifest: ModelManifest | None = None, *, threads: int | None = None
) -> Featurizer:
    """Build the featurizer the settings describe (precision, providers, threads), or the
    one of ``manifest`` (a worker serving the model it has read) with the same settings;
    ``threads`` overrides ``featurizer.threads``. ModelError when the file under the
    manifest's name is not the manifest's (another model took the name, e.g. a rollout's
    new model, or it is damaged)."""
    cfg = settings.featurizer
    manifest = manifest or load_manifest(settings.model_path, cfg.precision, cfg.pooling)
    onnx_path, _ = artefact_paths(settings.model_path, manifest.precision, manifest.pooling)
    try:
        with onnx_path.open("rb") as onnx_file:
            digest = hashlib.file_digest(onnx_file, "sha256").hexdigest()
    except OSError as exc:
        raise ModelError(f"cannot read {onnx_path}: {exc.strerror or exc}") from exc
    if digest != manifest.onnx_sha256:
        raise ModelError(f"{onnx_path} is not the file of model {manifest.model_id}")
    return Featurizer(
        manifest,
        onnx_path,
        providers=cfg.providers,
        threads=threads or cfg.threads,
        batch_size=cfg.batch_size,
        cache_dir=settings.data_dir / "trt-cache",
    )


class ConfiguredFeaturizer:
    """The featurizer of the model the settings configure, loaded again when a newly
    exported model takes its name (a rollout), looked for at most every
    ``worker.model_poll_s``: what the web app featurizes uploads and corrections with, so
    an item added after a rollout has the vectors the workers' index now reads. Until the
    new file is whole (its sha256 the manifest's), the model loaded before stays."""

    def __init__(self, settings: Settings, loaded: Featurizer | None = None) -> None:
        """``loaded``: the featurizer to start with (the caller's), else the configured."""
        self._settings = settings
        self._lock = threading.Lock()
        self._featurizer = loaded or load_featurizer(settings)
        self._previous: Featurizer | None = None  # the one the last reload replaced
        configured = self._configured()
        # the export under the configured name, as last seen
        self._exported = configured.model_id if configured else None
        self._checked_at = time.monotonic()
        self._refused: str | None = None  # the model id that did not load, said once

    def _configured(self) -> ModelManifest | None:
        cfg = self._settings.featurizer
        try:
            return load_manifest(self._settings.model_path, cfg.precision, cfg.pooling)
        except ModelError:  # no export under the name at this moment
            return None

    def get(self) -> Featurizer:
        with self._lock:
            if time.monotonic() - self._checked_at >= self._settings.worker.model_poll_s:
                self._checked_at = time.monotonic()
                self._reload_if_exported()
            return self._featurizer

    def _reload_if_exported(self) -> None:
        manifest = self._configured()
        if manifest is None or manifest.model_id == self._exported:
            return
        try:
            featurizer = load_featurizer(self._settings, manifest)
        except ModelError as exc:  # still being copied, or damaged: tried again next time
            if manifest.model_id != self._refused:
                logger.warning("model %s not loaded (yet): %s", manifest.model_id, exc)
            self._refused = manifest.model_id
            return
        logger.info(
            "featurizing with model %s from now on (was %s)",
            featurizer.model_id,
            self._featurizer.model_id,
        )
        self._previous = self._featurizer
        self._featurizer, self._exported, self._refused = featurizer, manifest.model_id, None

    def previous(self, model_id: str) -> Featurizer | None:
        """The featurizer a reload replaced, when it is of ``model_id``: the model a rollout
        moves the fleet from, which uploads are featurized with too until the fleet
        switched, so its devices find new items meanwhile (still loaded: its file may
        already be replaced)."""
        previous = self._previous
        return previous if previous is not None and previous.model_id == model_id else None
