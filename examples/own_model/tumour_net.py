"""A small 3-D CNN standing in for "your own model" in the clinxai example (config/examples/own_model.yaml).

Nothing here is clinxai's: a model of your own is any function that returns a torch.nn.Module taking the prepared
inputs (batch x modalities x D x H x W) and returning class logits -- here one binary logit, which clinxai turns
into two class logits.
"""

from torch import nn


class SmallCNN(nn.Module):
    """conv-BN-ReLU, pool, conv-BN-ReLU, global average pool, linear. GradCAM's layer: "features.6" (the last
    ReLU); the one before: "features.2"."""

    def __init__(self, in_channels: int, width: int, n_outputs: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(width, 2 * width, 3, padding=1), nn.BatchNorm3d(2 * width), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2 * width, n_outputs))

    def forward(self, x):
        return self.head(self.features(x))


def small_cnn(in_channels: int = 2, width: int = 8, n_outputs: int = 1) -> nn.Module:
    return SmallCNN(in_channels, width, n_outputs)
