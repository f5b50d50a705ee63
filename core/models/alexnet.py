"""AlexNet (Krizhevsky 2014's "one weird trick" variant, as torchvision)."""
from .. import nn
from .pretrained import model_function

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """Five convolutions and three fully connected layers; ``dropout`` before the first two.

    Example: ``AlexNet(num_classes=10)(jt.randn(1, 3, 224, 224))``.
    """

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes))

    def execute(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


alexnet = model_function("alexnet", {"IMAGENET1K_V1": "alexnet-owt-7be5be79.pth"}, AlexNet, target="`AlexNet`")
