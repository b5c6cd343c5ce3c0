"""Calibration batches for INT8 quantization and the FP32 agreement check: real sample
photos and seeded camera-like views of them, preprocessed exactly as frames are."""

from __future__ import annotations

import numpy as np

from edgelens.featurizer.preprocess import PreprocessSpec, to_model_input
from edgelens.samples.photos import SAMPLE_PHOTOS, load_photo
from edgelens.samples.views import camera_views


def calibration_batches(
    spec: PreprocessSpec, *, views_per_photo: int, seed: int
) -> list[np.ndarray]:
    """Real photos plus camera-like views of them, preprocessed exactly like frames.

    The seed differs from every evaluation seed so calibration never sees a test view.
    """
    batches = []
    for index, photo in enumerate(SAMPLE_PHOTOS):
        image = load_photo(photo.loader)
        for view in [image, *camera_views(image, views_per_photo, seed + index)]:
            batches.append(to_model_input([view], spec))
    return batches
