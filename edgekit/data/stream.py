"""Images read as preprocessed batches, never all at once: memory stays flat however many images a folder holds.

An :class:`ImageStream` is an :class:`~edgekit.data.images.ImageSet` (paths and labels) with the model's
preprocessing and a list of positions; subsets are positions, not copies. Decoding runs in torch ``DataLoader``
worker processes for large sets. A set that is read again and again (the judge images of every INT8 trial and
every ``--optimize`` candidate) is decoded once into a uint8 copy (a quarter of float32's bytes): in memory up to
``RAM_CACHE_MB``, beyond that in one file on disk that is read back a batch at a time (page cache, not the
process's memory), and removed when the stream is closed. ``Preprocess.normalize`` of the copy gives the floats
of a fresh decode bit for bit, so every figure is the same whichever way the images came.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import weakref
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import EdgekitError
from ..models.preprocess import Preprocess
from .images import ImageSet, load_image

BATCH = 32  # images per batch; a multiple of the runners' chunk of 16, so each file runs the chunks it always ran
RAM_CACHE_MB = 256  # a decoded set up to this size stays in memory (EDGEKIT_CACHE_RAM_MB sets it; 0: always disk)
PARALLEL_FROM = 64  # decode in worker processes from this many images (fewer: starting workers costs more)


def ram_cache_bytes() -> int:
    return int(float(os.environ.get("EDGEKIT_CACHE_RAM_MB", RAM_CACHE_MB)) * 1e6)


def decode_workers(n_images: int) -> int:
    """Worker processes for decoding ``n_images`` (EDGEKIT_WORKERS sets it; 0 decodes in this process)."""
    if "EDGEKIT_WORKERS" in os.environ:
        return max(0, int(os.environ["EDGEKIT_WORKERS"]))
    return 0 if n_images < PARALLEL_FROM else min(4, os.cpu_count() or 1)


class DecodeDataset:
    """A map-style dataset for torch's DataLoader: item ``i`` is (i, uint8 image (H, W, 3), modes converted, error
    or None).

    An unreadable image is returned as its one-line error, not raised: a worker's exception reaches the caller
    wrapped in a traceback, and edgekit's errors are one line naming the file. ``transform(image, i)`` replaces
    the evaluation preprocessing (fine-tuning's augmentation)."""

    def __init__(self, paths: list[Path], preprocess: Preprocess, transform=None) -> None:
        self.paths, self.preprocess, self.transform = paths, preprocess, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        converted: Counter = Counter()
        try:
            image = load_image(self.paths[i], converted)
            u8 = self.transform(image, i) if self.transform is not None else self.preprocess.to_uint8(image)
            return i, u8, dict(converted), None
        except EdgekitError as exc:
            return i, None, dict(converted), str(exc)


def _as_list(items):
    return items


def decoded(dataset: DecodeDataset, order: list[int], batch_size: int, workers: int,
            converted: Counter | None = None) -> Iterator[np.ndarray]:
    """uint8 (N, H, W, 3) batches of ``dataset`` in ``order``, decoded by ``workers`` processes (0: here)."""
    import torch
    from torch.utils.data import DataLoader

    # its own generator: a DataLoader otherwise draws its workers' base seed from torch's global random state,
    # which would move the dropout masks of a fine-tuning (and make a resumed one differ from one never stopped)
    loader = DataLoader(torch.utils.data.Subset(dataset, order), batch_size=batch_size, num_workers=workers,
                        collate_fn=_as_list, persistent_workers=False, generator=torch.Generator().manual_seed(0))
    with _ctrl_c_after():
        batches = iter(loader)
    try:
        for items in batches:
            for _, _, modes, error in items:
                if error is not None:
                    raise EdgekitError(error)
                if converted is not None:
                    converted.update(modes)
            yield np.stack([u8 for _, u8, _, _ in items])
    finally:
        # the workers stopped here, not in the iterator's __del__: Ctrl-C landing inside a __del__ is printed as
        # "Exception ignored" and lost (the run went on and exited 0), and inside the iterator's __init__ it left
        # a half-built iterator whose __del__ printed a traceback
        with _ctrl_c_after():
            getattr(batches, "_shutdown_workers", lambda: None)()


@contextmanager
def _ctrl_c_after():
    """Hold a Ctrl-C (SIGINT) that arrives inside the block and raise it as KeyboardInterrupt when the block ends:
    for starting and stopping worker processes, which must not be cut in half."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # only the main thread sets handlers; Ctrl-C ignored (a background job) or handled by the caller
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if held:
            raise KeyboardInterrupt


class _Rows:
    """The uint8 copy of a decoded set, (H, W, 3) an image: one array in memory, or one file on disk read back a
    batch at a time."""

    def __init__(self, n: int, shape: tuple[int, ...]) -> None:
        self.n, self.shape = n, tuple(shape)
        self.row_bytes = int(np.prod(shape))
        self.folder: Path | None = None
        if n * self.row_bytes <= ram_cache_bytes():
            self.ram = np.empty((n, *shape), np.uint8)
            return
        self.ram = None
        base = os.environ.get("TMPDIR") or tempfile.gettempdir()
        free = shutil.disk_usage(base).free
        if free < n * self.row_bytes * 1.1:
            raise EdgekitError(f"{n} decoded images need {n * self.row_bytes / 1e9:.1f} GB in {base}, which has "
                               f"{free / 1e9:.1f} GB free: set TMPDIR to a roomier disk or pass --max-images")
        self.folder = Path(tempfile.mkdtemp(prefix="edgekit-images-", dir=base))
        self.path = self.folder / "images.u8"
        self.path.touch()
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.folder), True)

    @property
    def where(self) -> str:
        return "memory" if self.ram is not None else str(self.folder)

    def write(self, start: int, batch: np.ndarray) -> None:
        if self.ram is not None:
            self.ram[start:start + len(batch)] = batch
            return
        with open(self.path, "r+b") as f:
            f.seek(start * self.row_bytes)
            f.write(np.ascontiguousarray(batch).tobytes())

    def read(self, rows: np.ndarray) -> np.ndarray:
        if self.ram is not None:
            return self.ram[rows]
        out = np.empty((len(rows), *self.shape), np.uint8)
        flat = out.reshape(len(rows), -1)
        with open(self.path, "rb", buffering=0) as f:
            i = 0
            while i < len(rows):  # one read per run of consecutive rows
                j = i + 1
                while j < len(rows) and rows[j] == rows[j - 1] + 1:
                    j += 1
                f.seek(int(rows[i]) * self.row_bytes)
                f.readinto(memoryview(flat[i:j]).cast("B"))
                i = j
        return out

    def close(self) -> None:
        if self.folder is not None:
            self._cleanup()


class ImageStream:
    """The images of an :class:`ImageSet` at ``positions``, read as (float32 batch, labels or None)."""

    def __init__(self, images: ImageSet, preprocess: Preprocess, positions=None, _rows: _Rows | None = None):
        self.images, self.preprocess = images, preprocess
        self.positions = np.arange(len(images)) if positions is None else np.asarray(positions, dtype=np.int64)
        self._rows = _rows

    def __len__(self) -> int:
        return len(self.positions)

    def __enter__(self) -> "ImageStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def labelled(self) -> bool:
        return self.images.labels is not None

    @property
    def labels(self) -> np.ndarray | None:
        if self.images.labels is None:
            return None
        return np.asarray(self.images.labels, dtype=np.int64)[self.positions]

    @property
    def paths(self) -> list[Path]:
        return [self.images.paths[i] for i in self.positions]

    @property
    def shape(self) -> tuple[int, int, int]:
        """One preprocessed image's shape, (3, H, W)."""
        return (3, self.preprocess.crop_size, self.preprocess.crop_size)

    @property
    def cached(self) -> bool:
        return self._rows is not None

    def unlabelled(self) -> "ImageStream":
        """The same images without their labels (judged by agreement, e.g. a model with random weights)."""
        images = ImageSet(self.images.root, self.images.paths, None, "none", self.images.skipped,
                          self.images.converted)
        return ImageStream(images, self.preprocess, self.positions, self._rows)

    def subset(self, idx) -> "ImageStream":
        """The images at ``idx`` (positions in this stream), sharing its decoded copy."""
        return ImageStream(self.images, self.preprocess, self.positions[np.asarray(idx, dtype=np.int64)], self._rows)

    def shard(self, rank: int, world: int) -> "ImageStream":
        """Every ``world``-th image from ``rank``: one process's share of a set read by several."""
        return self.subset(np.arange(rank, len(self), world))

    def _uint8(self, batch_size: int) -> Iterator[np.ndarray]:
        if self._rows is not None:
            for s in range(0, len(self), batch_size):
                yield self._rows.read(self.positions[s:s + batch_size])
            return
        ds = DecodeDataset(self.images.paths, self.preprocess)
        yield from decoded(ds, self.positions.tolist(), batch_size, decode_workers(len(self)), self.images.converted)

    def batches(self, batch_size: int = BATCH, progress=None, desc: str | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(float32 NCHW batch, labels or None), in order; with ``progress`` and ``desc``, a bar with images/s."""
        labels = self.labels
        task = progress.add_task(desc, total=len(self), unit="img") if progress is not None and desc else None
        start = 0
        for u8 in self._uint8(batch_size):
            y = None if labels is None else labels[start:start + len(u8)]
            start += len(u8)
            yield self.preprocess.normalize(u8), y
            if task is not None:
                progress.advance(task, len(u8))
        if task is not None:
            progress.remove_task(task)

    def head(self, n: int) -> np.ndarray:
        """The first ``n`` images as one float32 array (a bounded sample: timing, verification, sensitivity)."""
        return self.subset(range(min(n, len(self)))).array()[0]

    def array(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Every image in one float32 array, with the labels: only for sets known to be small."""
        xs, ys = [], []
        for x, y in self.batches():
            xs.append(x)
            if y is not None:
                ys.append(y)
        empty = np.empty((0, *self.shape), np.float32)
        return (np.concatenate(xs) if xs else empty), (np.concatenate(ys) if ys else self.labels)

    def cache(self, progress=None, desc: str = "reading images") -> "ImageStream":
        """Decode every image of this stream once into a uint8 copy that later reads (of it or of its subsets) use;
        returns the stream over the copy (this one is unchanged)."""
        if self._rows is not None:
            return self
        rows = _Rows(len(self), (self.preprocess.crop_size, self.preprocess.crop_size, 3))
        try:
            start = 0
            task = progress.add_task(desc, total=len(self), unit="img") if progress is not None else None
            for u8 in self._uint8(BATCH):
                rows.write(start, u8)
                start += len(u8)
                if task is not None:
                    progress.advance(task, len(u8))
            if task is not None:
                progress.remove_task(task)
        except BaseException:
            rows.close()
            raise
        sub = ImageSet(self.images.root, self.paths, None if self.labels is None else self.labels.tolist(),
                       self.images.label_source, self.images.skipped, self.images.converted)
        return ImageStream(sub, self.preprocess, None, rows)

    def describe_cache(self) -> dict | None:
        if self._rows is None:
            return None
        return {"images": self._rows.n, "bytes": self._rows.n * self._rows.row_bytes, "where": self._rows.where}


    def close(self) -> None:
        """Remove the decoded copy on disk (its subsets share it: close the stream that made it, once done)."""
        if self._rows is not None:
            self._rows.close()
