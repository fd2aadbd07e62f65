"""Training images for fine-tuning: the augmentation users expect, seeded per image, read a batch at a time.

The augmentation of image ``i`` in epoch ``e`` comes from a generator seeded by (seed, epoch, i), not from a worker
process's random state: the same weights come out whatever the number of decoding workers or torchrun processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import EdgekitError
from ..prune.finetune import AUGMENTS


@dataclass(frozen=True)
class Augment:
    """``crop-flip``: torchvision's ImageNet training recipe, RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) to
    the model's input and a horizontal flip half the time; ``flip`` only the flip, on the evaluation crop; ``none``
    the evaluation preprocessing (images whose meaning a flip changes: digits, text)."""

    kind: str = "crop-flip"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        if self.kind not in AUGMENTS:
            raise EdgekitError(f"--augment {self.kind}: choose {', '.join(AUGMENTS)}")

    def describe(self) -> str:
        return {"crop-flip": f"random-resized crop (scale {self.scale[0]:g}-{self.scale[1]:g}) and horizontal "
                             "flip on the training images; evaluation preprocessing on the held-out ones",
                "flip": "horizontal flip on the training images; evaluation preprocessing on the held-out ones",
                "none": "none: the evaluation preprocessing on every image"}[self.kind]

    def transform(self, preprocess, seed: int, epoch: int):
        """``f(image, i) -> uint8 (3, H, W)`` for epoch ``epoch``, or None for the evaluation preprocessing."""
        if self.kind == "none":
            return None
        return _Transform(self, preprocess, seed, epoch)


class _Transform:
    """Picklable (DataLoader workers receive it): the augmentation of one epoch."""

    def __init__(self, aug: Augment, preprocess, seed: int, epoch: int) -> None:
        self.aug, self.preprocess, self.seed, self.epoch = aug, preprocess, seed, epoch

    def __call__(self, image, i: int) -> np.ndarray:
        """uint8 (H, W, 3), as ``Preprocess.to_uint8`` gives."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        rng = np.random.default_rng([self.seed, self.epoch, i])
        size = self.preprocess.crop_size
        if self.aug.kind == "crop-flip":
            top, left, h, w = crop_box(image.size[1], image.size[0], self.aug.scale, self.aug.ratio, rng)
            image = F.resized_crop(image, top, left, h, w, [size, size],
                                   interpolation=InterpolationMode(self.preprocess.interpolation), antialias=True)
            u8 = np.asarray(image, dtype=np.uint8)
        else:
            u8 = self.preprocess.to_uint8(image)
        return np.ascontiguousarray(u8[:, ::-1]) if rng.random() < 0.5 else u8


def crop_box(height: int, width: int, scale, ratio, rng) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop, torchvision's ``RandomResizedCrop.get_params`` with ``rng``: an area
    ``scale`` of the image at an aspect ratio in ``ratio`` (log-uniform), ten tries, then the central crop."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class ArrayImages:
    """Preprocessed images already in memory (a script's arrays, the tests'), with an ``ImageStream``'s reading
    interface; fine-tuning uses them as given (no augmentation: they are floats already)."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        self.x, self._y = np.asarray(x, dtype=np.float32), None if y is None else np.asarray(y)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def labelled(self) -> bool:
        return self._y is not None

    @property
    def labels(self) -> np.ndarray | None:
        return self._y

    @property
    def shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def unlabelled(self) -> "ArrayImages":
        return ArrayImages(self.x)

    def subset(self, idx) -> "ArrayImages":
        idx = np.asarray(idx, dtype=np.int64)
        return ArrayImages(self.x[idx], None if self._y is None else self._y[idx])

    def batches(self, batch_size: int = 32, progress=None, desc: str | None = None):
        for i in range(0, len(self.x), batch_size):
            yield self.x[i:i + batch_size], None if self._y is None else self._y[i:i + batch_size]

    def head(self, n: int) -> np.ndarray:
        return self.x[:n]

    def array(self):
        return self.x, self._y

    augmentation = "none (preprocessed arrays)"

    def train_batches(self, order: list[int], batch_size: int, seed_epoch=None, pin: bool = False,
                      reads: list | None = None):
        if reads is not None:
            reads.extend(order)
        for x, y in _torch_batches(self.x, self._y, order, batch_size):
            yield (x.pin_memory() if pin else x), y


def _torch_batches(x: np.ndarray, labels, order: list[int], batch_size: int):
    """Indexed by torch, which keeps the arrays' memory layout (channels last, as images are read)."""
    import torch

    xt = torch.from_numpy(x)
    yt = None if labels is None else torch.from_numpy(np.asarray(labels)).long()
    for s in range(0, len(order), batch_size):
        idx = torch.as_tensor(order[s:s + batch_size])
        yield xt[idx], None if yt is None else yt[idx]


class TrainImages:
    """Fine-tuning images: an ``ImageStream`` whose training reads are augmented (``train_batches``) while its
    other reads (``batches``: the images that choose the epoch) get the evaluation preprocessing."""

    def __init__(self, stream, augment: Augment) -> None:
        self.stream, self.augment = stream, augment

    def __len__(self) -> int:
        return len(self.stream)

    @property
    def labelled(self) -> bool:
        return self.stream.labelled

    @property
    def augmentation(self) -> str:
        return self.augment.describe()

    def subset(self, idx) -> "TrainImages":
        return TrainImages(self.stream.subset(idx), self.augment)

    def batches(self, batch_size: int = 32, progress=None, desc: str | None = None):
        return self.stream.batches(batch_size, progress, desc)

    def head(self, n: int) -> np.ndarray:
        return self.stream.head(n)

    def train_batches(self, order: list[int], batch_size: int, seed_epoch: tuple[int, int], pin: bool = False,
                      reads: list | None = None) -> Iterator[tuple]:
        """(x, y or None) torch batches of the images at ``order``: decoded in worker processes, augmented per image
        (seeded by seed, epoch and image), into pinned memory for a GPU. ``reads`` collects the positions read."""
        import torch

        from .stream import DecodeDataset, decode_workers, decoded

        s, labels = self.stream, self.stream.labels
        if reads is not None:
            reads.extend(order)
        ds = DecodeDataset(s.images.paths, s.preprocess, self.augment.transform(s.preprocess, *seed_epoch))
        start = 0
        where = s.positions[np.asarray(order, dtype=np.int64)].tolist()
        for u8 in decoded(ds, where, batch_size, decode_workers(len(order)), s.images.converted):
            x = torch.from_numpy(s.preprocess.normalize(u8))
            y = None if labels is None else torch.from_numpy(labels[order[start:start + len(u8)]]).long()
            start += len(u8)
            yield (x.pin_memory() if pin else x), y
