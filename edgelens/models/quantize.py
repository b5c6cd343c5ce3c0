"""Static INT8 (QDQ) quantisation of the FP32 featurizer, calibrated on real photos.

Calibration sees the sample photos and seeded camera-like views of them
(:func:`edgelens.models.calibration.calibration_batches`), none of them a test view.

The recipe was chosen by measurement (docs/decisions.md):
- ``quant_pre_process`` first, symbolic shape inference included: it folds the
  static-padding subgraphs so Pad fuses into Conv (onnxruntime 1.25 folds them only
  with the symbolic shapes); without it INT8 runs slower than FP32.
- per-channel int8 weights (per-tensor ones lose too much agreement with FP32), uint8
  activations (int8 activations are slower on x86), no reduce_range.
- the stem conv and the first MBConv block stay in float: they lift the worst-case
  agreement with FP32 at no cost in speed. Everything after the head conv stays too (the
  pooling, whose cube and cube root would lose most of their range in 8 bits).
Dynamic quantisation is much slower than FP32 on CPU, so it is not offered.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgelens.errors import ModelError
from edgelens.featurizer.manifest import INPUT_NAME
from edgelens.featurizer.preprocess import PreprocessSpec
from edgelens.models.calibration import calibration_batches

logger = logging.getLogger(__name__)

CALIBRATION_SEED = 7_000
CALIBRATION_VIEWS_PER_PHOTO = 4
# Node-name patterns (from the TorchScript export) of the layers kept in float.
FLOAT_LAYERS = re.compile(r"/_conv_stem/|/_blocks\.0/")
HEAD_CONV = "/_conv_head/Conv"


class _BatchReader(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._iter = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iter, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(fp32_path: Path, onnx_path: Path, spec: PreprocessSpec) -> None:
    batches = calibration_batches(
        spec, views_per_photo=CALIBRATION_VIEWS_PER_PHOTO, seed=CALIBRATION_SEED
    )
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
        excluded = _float_nodes(onnx.load(str(prepared)))
        staged = Path(tmp) / "int8.onnx"
        with _quiet_root_logger():  # the quantiser logs every rescaled bias at INFO on root
            quantize_static(
                str(prepared),
                str(staged),
                _BatchReader(batches),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=excluded,
            )
        logger.info(
            "int8: calibrated on %d images, %d nodes kept in float", len(batches), len(excluded)
        )
        staged.replace(onnx_path)


def padding_left(onnx_path: Path) -> bool:
    """Whether the graph still holds static-padding subgraphs (Pad nodes) that the
    pre-processing folds into the convolutions: an INT8 export with them runs slower than
    FP32 (one made with onnxruntime 1.25 before the pre-processing kept its symbolic shape
    inference)."""
    return any(node.op_type == "Pad" for node in onnx.load(str(onnx_path)).graph.node)


def _float_nodes(model: onnx.ModelProto) -> list[str]:
    """The stem, the first block, and every node after the head conv: the pooling and
    normalisation, whose cube and cube root would lose most of their range in 8 bits."""
    names = [node.name for node in model.graph.node]
    if HEAD_CONV not in names or not any(FLOAT_LAYERS.search(n) for n in names):
        raise ModelError("int8: the graph lacks the stem, first block or head conv by name")
    after_head = names[names.index(HEAD_CONV) + 1 :]
    return [n for n in names if FLOAT_LAYERS.search(n)] + after_head


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)
