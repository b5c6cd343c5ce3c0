"""Frames of nothing: what a camera sees when no item is in view.

The unknown set (:mod:`edgelens.evaluation.unknown_views`) holds photographs of things. A
device also films nothing at all: a plain wall or shelf back under uneven shop light, a
covered lens, a dark aisle with the gain up, a grey card, a smooth ramp of light, and, from
a failing sensor or a disconnected analogue camera, pure noise. Their vectors resemble any
flat catalog photo, so they belong in the open set beside the photographs: the answer must
say "no match" to each. Generated from a seed, so a calibration half and a test half differ.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgelens.evaluation.runner import Query

HEIGHT, WIDTH = 480, 640
_ROWS, _COLUMNS = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)


def _wall(rng: np.random.Generator) -> np.ndarray:
    """A plain surface: light falling to the corners and from one side, sensor noise."""
    level = rng.uniform(60, 220)
    falloff = rng.uniform(0.0, 0.5) * ((_COLUMNS - WIDTH / 2) ** 2 + (_ROWS - HEIGHT / 2) ** 2)
    side = rng.uniform(0.0, 0.6) * (_COLUMNS if rng.random() < 0.5 else WIDTH - _COLUMNS)
    light = level * (1 - falloff / (WIDTH * 0.625) ** 2) * (1 - side / WIDTH)
    tint = rng.uniform(0.85, 1.15, 3)
    return _with_noise(light[..., None] * tint, rng, rng.uniform(2, 20))


def _dark(rng: np.random.Generator) -> np.ndarray:
    """A covered lens or a dark aisle: a low level and the sensor's noise, gain up."""
    return _with_noise(np.full((HEIGHT, WIDTH, 3), rng.uniform(2, 20)), rng, rng.uniform(1, 10))


def _card(rng: np.random.Generator) -> np.ndarray:
    """A grey card or a lit, featureless surface held close."""
    return _with_noise(np.full((HEIGHT, WIDTH, 3), rng.uniform(40, 230)), rng, rng.uniform(0, 3))


def _ramp(rng: np.random.Generator) -> np.ndarray:
    """A smooth ramp of light across the frame, at any angle."""
    angle = rng.uniform(0, np.pi)
    ramp = np.cos(angle) * _COLUMNS / WIDTH + np.sin(angle) * _ROWS / HEIGHT
    low, high = sorted(rng.uniform(20, 235, 2))
    light = low + (high - low) * (ramp - ramp.min()) / np.ptp(ramp)
    return _with_noise(np.repeat(light[..., None], 3, axis=2), rng, rng.uniform(1, 6))


def _noise(rng: np.random.Generator) -> np.ndarray:
    """Pure noise: a failing sensor, or analogue snow."""
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _with_noise(light: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(light + rng.normal(0.0, sigma, light.shape), 0, 255).astype(np.uint8)


KINDS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "plain wall": _wall,
    "covered lens or dark aisle": _dark,
    "grey card": _card,
    "ramp of light": _ramp,
    "noise": _noise,
}


def empty_views(per_kind: int, seed: int) -> list[Query]:
    """``per_kind`` frames of each kind of nothing, as queries of no catalog item."""
    rng = np.random.default_rng(seed)
    return [
        Query("", make(rng), f"nothing in view: {kind} {n + 1}")
        for kind, make in KINDS.items()
        for n in range(per_kind)
    ]
