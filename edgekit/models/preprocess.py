"""Evaluation preprocessing, identical to torchvision's ``ImageClassification`` preset.

One definition serves export checks, calibration, evaluation and the Jetson manifest, so an INT8 model is
never calibrated on images prepared differently from the ones it is judged on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize_size``, centre-crop ``crop_size``, scale to [0, 1], normalise."""

    crop_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {self.interpolation!r}")
        if self.crop_size <= 0 or self.resize_size < self.crop_size:
            raise ValueError(f"need 0 < crop_size <= resize_size, got {self.crop_size}, {self.resize_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values each, std > 0")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def __call__(self, image) -> np.ndarray:
        """PIL RGB image -> float32 array (3, crop, crop)."""
        return self.normalize(self.to_uint8(image)[None])[0]

    def to_uint8(self, image) -> np.ndarray:
        """PIL RGB image -> uint8 array (crop, crop, 3): resized and cropped, before scaling.

        The half of the preprocessing that decodes and resamples (slow, done once); a set read again and again
        keeps this, a quarter of the float32 bytes, and :meth:`normalize` makes the same floats bit for bit."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        img = F.resize(image, [self.resize_size], interpolation=InterpolationMode(self.interpolation),
                       antialias=True)
        return np.array(F.center_crop(img, [self.crop_size]), dtype=np.uint8)  # a writable copy, for torch

    def normalize(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) -> float32 (N, 3, H, W): scaled to [0, 1] and normalised, as torchvision does.

        The result is a channels-first view of channels-last memory, as torchvision's ``pil_to_tensor`` leaves an
        image: the same bytes in the same order as edgekit's earlier per-image reading, so a torch model that is
        given them runs the same kernels and gives the same results to the last bit."""
        import torch
        from torchvision.transforms import functional as F

        t = F.convert_image_dtype(torch.from_numpy(batch).permute(0, 3, 1, 2), torch.float)
        return F.normalize(t, mean=list(self.mean), std=list(self.std)).numpy()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        return cls(int(d["crop_size"]), int(d["resize_size"]), str(d["interpolation"]),
                   tuple(d["mean"]), tuple(d["std"]))

    def with_overrides(self, crop_size: int | None = None, resize_size: int | None = None,
                       interpolation: str | None = None, mean=None, std=None) -> "Preprocess":
        crop = crop_size or self.crop_size
        if resize_size is None:
            # keep the card's resize/crop ratio (e.g. 256/224) when only the input size changes
            resize_size = self.resize_size if crop_size is None else round(crop * self.resize_size / self.crop_size)
        return Preprocess(crop, resize_size, interpolation or self.interpolation,
                          tuple(mean) if mean else self.mean, tuple(std) if std else self.std)
