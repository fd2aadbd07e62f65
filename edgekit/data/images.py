"""Reading image folders: labelled (one sub-folder per class) or not, with every oddity counted."""

from __future__ import annotations

import hashlib
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import EdgekitError
from ..models.preprocess import Preprocess

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
_WNID = re.compile(r"^n\d{8}$")


@dataclass
class ImageSet:
    root: Path
    paths: list[Path]
    labels: list[int] | None = None  # model class index per image; None when the folder has no labels
    label_source: str = "none"  # how folder names became indices: wnid, class-name, sorted-folders
    skipped: list[Path] = field(default_factory=list)  # files without an image suffix
    converted: Counter = field(default_factory=Counter)  # image modes converted to RGB (L, CMYK, RGBA, P...)

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx) -> "ImageSet":
        idx = list(idx)
        return ImageSet(self.root, [self.paths[i] for i in idx],
                        None if self.labels is None else [self.labels[i] for i in idx],
                        self.label_source, self.skipped, self.converted)

    def fingerprint(self) -> str:
        """sha256 over each image's path relative to the root, byte size and label, in order.

        Two accuracies are comparable only when measured on the same images; this tells whether they were,
        without hashing every byte of a large evaluation set.
        """
        h = hashlib.sha256()
        for i, p in enumerate(self.paths):
            rel = p.relative_to(self.root).as_posix() if p.is_relative_to(self.root) else p.name
            label = "" if self.labels is None else str(self.labels[i])
            h.update(f"{rel}\0{p.stat().st_size}\0{label}\n".encode())
        return h.hexdigest()

    def summary(self) -> dict:
        return {"root": str(self.root), "images": len(self.paths), "labelled": self.labelled,
                "label_source": self.label_source, "skipped_non_images": len(self.skipped),
                "converted_to_rgb": dict(self.converted), "fingerprint": self.fingerprint()}


@lru_cache(maxsize=1)
def imagenet_wnids() -> dict[str, int]:
    text = resources.files("edgekit").joinpath("assets/imagenet_classes.tsv").read_text()
    rows = [ln.split("\t") for ln in text.splitlines()[1:] if ln.strip()]
    return {wnid: int(idx) for idx, wnid, _ in rows}


def builtin_photos() -> Path:
    """Seven real photos shipped with edgekit, the fallback when a user gives no images."""
    return Path(str(resources.files("edgekit").joinpath("assets/photos")))


def _images_in(folder: Path, recursive: bool) -> tuple[list[Path], list[Path]]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    entries = [p for p in it if not p.name.startswith(".")]
    files = sorted(p for p in entries if p.is_file())
    broken = sorted(p for p in entries if p.is_symlink() and not p.exists())  # dangling or looping links
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES] + broken


def scan(root: str | Path, categories: list[str] | None = None, num_classes: int | None = None,
         labels: bool = True) -> ImageSet:
    """Find the images under ``root``; with class sub-folders, map them to the model's class indices.

    Sub-folder names map to indices as: ImageNet wnids (n01440764...) to their ImageNet index, names found
    in ``categories`` to their position, otherwise sorted folder order (torchvision ImageFolder), which
    needs every class present.
    """
    root = Path(root)
    if root.is_file():
        raise EdgekitError(f"{root} is a file, not a folder: pass the folder that holds the images")
    if not root.is_dir():
        raise EdgekitError(f"image folder {root} does not exist: pass a folder of images")
    top_images, top_other = _images_in(root, recursive=False)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if top_images or not subdirs or not labels:
        images, other = _images_in(root, recursive=True)
        if not images:
            raise EdgekitError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                               "point at a folder of images")
        return ImageSet(root, images, None, "none", other)

    paths, labs, other = [], [], list(top_other)
    names = [d.name for d in subdirs]
    mapping, source = _label_mapping(root, names, categories, num_classes)
    for d in subdirs:
        imgs, rest = _images_in(d, recursive=True)
        paths += imgs
        labs += [mapping[d.name]] * len(imgs)
        other += rest
    if not paths:
        raise EdgekitError(f"{root} has class folders but no images in them: put images in the class folders")
    return ImageSet(root, paths, labs, source, other)


def _label_mapping(root: Path, names: list[str], categories, num_classes) -> tuple[dict[str, int], str]:
    if all(_WNID.match(n) for n in names):
        wnids = imagenet_wnids()
        unknown = [n for n in names if n not in wnids]
        if unknown:
            raise EdgekitError(f"{root / unknown[0]} is not an ImageNet-1k class: remove it or rename the folder")
        if num_classes not in (None, 1000):
            raise EdgekitError(f"{root} is labelled with ImageNet wnids but the model has {num_classes} classes: "
                               "evaluate with a folder of its own classes")
        return {n: wnids[n] for n in names}, "wnid"
    if categories:
        lookup = {c.lower(): i for i, c in enumerate(categories)}
        if all(n.lower() in lookup for n in names):
            return {n: lookup[n.lower()] for n in names}, "class-name"
    if num_classes is not None and len(names) != num_classes:
        raise EdgekitError(
            f"{root} has {len(names)} class folders but the model has {num_classes} classes, and the folder "
            "names are neither ImageNet wnids nor the model's class names: name the folders after the classes")
    return {n: i for i, n in enumerate(names)}, "sorted-folders"


def load_image(path: Path, converted: Counter | None = None):
    """Open ``path`` as an RGB PIL image; other modes (L, CMYK, RGBA, P) are converted and counted."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL warns past MAX_IMAGE_PIXELS and raises past twice that; both are refused the same way
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            im.load()
            return _to_rgb(im, converted)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        raise EdgekitError(f"{path} is {size.group(1) + ' pixels' if size else 'too large'}, over PIL's "
                           f"decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels: resize it (a few "
                           "hundred pixels a side is plenty) or remove it from the folder") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise EdgekitError(f"{path} is not a readable image ({type(exc).__name__}): "
                           "remove it from the folder or replace it") from None


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_rgb(im, converted: Counter | None):
    """RGB as a viewer shows it: EXIF orientation applied, 16-bit scaled (not clipped) to 8, alpha on white."""
    from PIL import Image, ImageOps

    def count(what: str) -> None:
        if converted is not None:
            converted[what] += 1

    if getattr(im, "n_frames", 1) > 1:
        count("animated (first frame)")
    if im.getexif().get(0x0112, 1) != 1:
        count("EXIF-rotated")
        im = ImageOps.exif_transpose(im)
    if im.mode == "RGB":
        return im.copy()
    count(im.mode)
    if im.mode in _SIXTEEN_BIT or (im.mode == "I" and np.asarray(im).max() > 255):
        # PIL's convert clips 16-bit values at 255 (a white image); scale 0..65535 to 0..255 instead
        im = Image.fromarray((np.asarray(im, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("RGB")


def iter_batches(images: ImageSet, preprocess: Preprocess, batch_size: int,
                 progress=None, task=None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield (float32 NCHW batch, labels or None); the last batch may be short."""
    for start in range(0, len(images), batch_size):
        chunk = images.paths[start:start + batch_size]
        x = np.stack([preprocess(load_image(p, images.converted)) for p in chunk]).astype(np.float32)
        y = None if images.labels is None else np.asarray(images.labels[start:start + batch_size])
        if progress is not None:
            progress.advance(task, len(chunk))
        yield x, y


def load_array(images: ImageSet, preprocess: Preprocess, progress=None, desc: str = "reading images"):
    """All images preprocessed into one array (N, 3, H, W) plus labels."""
    from ..progress import track_progress

    with track_progress(progress) as prog:
        task = prog.add_task(desc, total=len(images))
        xs, ys = [], []
        for x, y in iter_batches(images, preprocess, 32, prog, task):
            xs.append(x)
            if y is not None:
                ys.append(y)
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)
