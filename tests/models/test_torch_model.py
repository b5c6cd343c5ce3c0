"""The R-GeM descriptor itself, on hand-made feature maps (no backbone needed)."""

import pytest

torch = pytest.importorskip("torch", reason="torch model tests need the [export] extra")

from edgelens.models.torch_model import SHARPEN, rgem_descriptor  # noqa: E402


def _scene(dominant_columns: int) -> torch.Tensor:
    """A 7x7 map whose left columns show content A (channels 0-7), the rest content B
    (channels 8-15), over a weak shared background."""
    features = torch.full((1, 16, 7, 7), 0.05)
    features[0, :8, :, :dominant_columns] = 1.0
    features[0, 8:, :, dominant_columns:] = 1.0
    return features


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum())


def test_descriptor_is_unit_length_and_positive():
    vector = rgem_descriptor(_scene(4))
    assert vector.shape == (1, 16)
    assert float(vector.norm()) == pytest.approx(1.0, abs=1e-6)
    assert bool((vector > 0).all())


def test_sharpening_lets_the_dominant_content_outweigh_the_rest():
    assert SHARPEN > 1.0
    mixed, pure_a, pure_b = _scene(5), _scene(7), _scene(0)
    sharp = rgem_descriptor(mixed)
    flat = rgem_descriptor(mixed, sharpen=1.0)
    # Closer to what fills most of the frame, further from the minority content.
    assert _cosine(sharp, rgem_descriptor(pure_a)) > _cosine(flat, rgem_descriptor(pure_a, 1.0))
    assert _cosine(sharp, rgem_descriptor(pure_b)) < _cosine(flat, rgem_descriptor(pure_b, 1.0))
