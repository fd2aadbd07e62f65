"""Calibration data for INT8: real images (or preprocessed tensors) and the cache of tensor ranges.

A calibration source is anything with ``get_next() -> {input_name: array} | None``, the shape of
onnxruntime's ``CalibrationDataReader``. Images go through the model's evaluation preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol, runtime_checkable

import numpy as np

from ..errors import EdgekitError, first_line
from ..fsutil import sha256_file, write_json
from ..models.preprocess import Preprocess
from .images import ImageSet, scan
from .stream import ImageStream

log = logging.getLogger("edgekit")
CACHE_VERSION = 1
DEFAULT_CACHE_DIR = Path("calibration") / "cache"
MIN_RECOMMENDED = 100


@runtime_checkable
class CalibrationReader(Protocol):
    """onnxruntime's ``CalibrationDataReader`` shape: the next batch as ``{input_name: array}``, None when done."""

    def get_next(self) -> dict | None: ...


class ArrayReader:
    """Feeds preprocessed samples one batch at a time under the model's input name."""

    def __init__(self, x: np.ndarray, input_name: str, batch_size: int = 1) -> None:
        self.x, self.input_name, self.batch_size = x, input_name, batch_size
        self._i = 0

    def get_next(self) -> dict | None:
        if self._i >= len(self.x):
            return None
        batch = self.x[self._i:self._i + self.batch_size]
        self._i += self.batch_size
        return {self.input_name: np.ascontiguousarray(batch)}

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size


class StreamReader:
    """Feeds the images of an ``ImageStream`` one batch of ``batch_size`` at a time, reading them in blocks: the
    calibration images are never all in memory as floats."""

    def __init__(self, stream: ImageStream, input_name: str, batch_size: int = 1) -> None:
        self.stream, self.input_name, self.batch_size = stream, input_name, batch_size
        self._blocks = None
        self._pending = np.empty((0, *stream.shape), np.float32)

    def get_next(self) -> dict | None:
        if self._blocks is None:
            self._blocks = self.stream.batches()
        while len(self._pending) < self.batch_size:
            block = next(self._blocks, None)
            if block is None:
                break
            self._pending = np.concatenate([self._pending, block[0]])
        if not len(self._pending):
            return None
        batch, self._pending = self._pending[:self.batch_size], self._pending[self.batch_size:]
        return {self.input_name: np.ascontiguousarray(batch)}

    def __len__(self) -> int:
        return (len(self.stream) + self.batch_size - 1) // self.batch_size


class Samples:
    """The calibration samples as an iterable that can be read again, one (1, C, H, W) sample at a time: NNCF's
    ``nncf.Dataset`` takes it (it reads the samples more than once) without a list of every sample in memory."""

    def __init__(self, cal: "CalibrationSet") -> None:
        self.cal = cal

    def __len__(self) -> int:
        return len(self.cal)

    def __iter__(self):
        for x in self.cal.batches():
            yield from (x[i:i + 1] for i in range(len(x)))


class IterableReader:
    """A reader over any iterable of batches: arrays (fed under ``input_name``) or ``{input_name: array}`` dicts."""

    def __init__(self, batches: Iterable, input_name: str) -> None:
        self._it, self.input_name = iter(batches), input_name

    def get_next(self) -> dict | None:
        batch = next(self._it, None)
        if batch is None:
            return None
        if isinstance(batch, dict):
            return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in batch.items()}
        return {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


def from_iterable(batches: Iterable, input_name: str = "input") -> IterableReader:
    """Adapt a user's iterable (a generator, a list, a DataLoader yielding arrays) to a calibration reader."""
    return IterableReader(batches, input_name)


def reader_for(source, input_name: str) -> CalibrationReader:
    """A reader over a calibration *source*: a :class:`CalibrationSet` or an array of preprocessed samples (a fresh
    reader each call), a reader with ``get_next()`` (returned as it is: one pass), or an iterable of batches."""
    if isinstance(source, CalibrationSet):
        return source.reader(input_name)
    if isinstance(source, np.ndarray):
        return ArrayReader(source, input_name)
    if isinstance(source, CalibrationReader):
        return source
    if isinstance(source, (str, Path)) or not isinstance(source, Iterable):
        raise EdgekitError(f"not a calibration source: {type(source).__name__}; pass a folder or .npy/.npz path "
                           "to the pipeline, or an array, a reader with get_next(), or an iterable of batches")
    return from_iterable(source, input_name)


def describe_source(source) -> dict:
    """What the cache metadata records about a source."""
    if isinstance(source, CalibrationSet):
        return source.describe()
    if isinstance(source, np.ndarray):
        return {"kind": "array", "size": int(len(source))}
    return {"kind": "reader", "source": type(source).__name__}


@dataclass
class CalibrationSet:
    """The chosen calibration samples, what they are, and the held-out rest of the folder. ``samples`` is an
    ``ImageStream`` (images, read in batches from a uint8 copy) or an array (preprocessed tensors, or what a
    user's reader gave)."""

    samples: object
    source: str  # folder or file
    kind: str  # "images", "tensors", "builtin" or "reader"
    items: list[str]  # relative image paths (or the tensor file's name)
    fingerprint: str  # sha256 over the items' contents
    held_out: ImageSet | None = None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def shape(self) -> tuple:
        """One sample's shape (C, H, W)."""
        return tuple(self.samples.shape[1:]) if isinstance(self.samples, np.ndarray) else self.samples.shape

    def batches(self, batch_size: int = 32):
        """The samples in order, a float32 batch at a time."""
        if isinstance(self.samples, np.ndarray):
            for i in range(0, len(self.samples), batch_size):
                yield self.samples[i:i + batch_size]
        else:
            for x, _ in self.samples.batches(batch_size):
                yield x

    def reader(self, input_name: str, batch_size: int = 1) -> CalibrationReader:
        """A fresh onnxruntime-shaped reader over the samples."""
        if isinstance(self.samples, np.ndarray):
            return ArrayReader(self.samples, input_name, batch_size)
        return StreamReader(self.samples, input_name, batch_size)

    @property
    def x(self) -> np.ndarray:
        """Every sample in one float32 array: for the few callers that need one (tests, small sets)."""
        if isinstance(self.samples, np.ndarray):
            return self.samples
        return self.samples.array()[0]

    def describe(self) -> dict:
        return {"source": self.source, "kind": self.kind, "size": int(len(self)),
                "fingerprint": self.fingerprint, "warnings": self.warnings}


def select(n_total: int, size: int, seed: int) -> list[int]:
    """Deterministic choice of ``size`` of ``n_total`` indices, returned sorted."""
    if size >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).choice(n_total, size=size, replace=False).tolist())


def from_folder(folder: str | Path, preprocess: Preprocess, size: int = 512, seed: int = 0,
                kind: str = "images", progress=None) -> CalibrationSet:
    """``size`` images chosen with ``seed`` from ``folder`` (recursively; labels ignored), decoded once into a
    uint8 copy (calibration reads them once per configuration)."""
    images = scan(folder, labels=False)
    idx = select(len(images), size, seed)
    chosen = images.subset(idx)
    rest = sorted(set(range(len(images))) - set(idx))
    warnings = []
    if len(chosen) < size and kind != "builtin":
        warnings.append(f"only {len(chosen)} calibration images in {folder} (asked for {size})")
    if len(chosen) < MIN_RECOMMENDED:
        warnings.append(f"{len(chosen)} calibration images is few: INT8 ranges are more reliable from "
                        f"{MIN_RECOMMENDED}+ (NNCF uses 300)")
    stream = ImageStream(chosen, preprocess).cache(progress, "reading calibration images")
    digest = hashlib.sha256()
    rel = []
    for p in chosen.paths:
        r = str(p.relative_to(images.root))
        rel.append(r)
        digest.update(r.encode() + b"\0" + sha256_file(p).encode())
    return CalibrationSet(stream, str(folder), kind, rel, digest.hexdigest(),
                          images.subset(rest) if rest else None, warnings)


def from_tensors(path: str | Path, input_shape: list, size: int = 512, seed: int = 0) -> CalibrationSet:
    """Preprocessed samples from an .npy (N, C, H, W) or an .npz holding one such array."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r")  # an .npy is mapped: only the chosen rows are read
        if isinstance(data, np.lib.npyio.NpzFile):
            if len(data.files) != 1:
                raise ValueError(f"expected one array, found {data.files}")
            data = data[data.files[0]]
    except Exception as exc:
        raise EdgekitError(f"{path} is not a readable .npy/.npz of preprocessed images ({first_line(exc)}): "
                           "save one float32 array of shape (N, 3, H, W) with numpy.save") from None
    expected = [d for d in input_shape[1:]]
    if data.ndim != 4 or list(data.shape[1:]) != expected:
        raise EdgekitError(f"{path} holds an array of shape {list(data.shape)}; the model needs (N, "
                           f"{', '.join(map(str, expected))}): preprocess the images to the model's input")
    idx = select(len(data), size, seed)
    x = np.ascontiguousarray(data[idx], dtype=np.float32)
    warnings = [] if len(x) >= MIN_RECOMMENDED else [
        f"{len(x)} calibration samples is few: INT8 ranges are more reliable from {MIN_RECOMMENDED}+"]
    fp = hashlib.sha256(sha256_file(path).encode() + json.dumps(idx).encode()).hexdigest()
    return CalibrationSet(x, str(path), "tensors", [path.name], fp, None, warnings)


def from_reader(source, size: int | None = None) -> CalibrationSet:
    """Materialize a reader (or an iterable of batches) once: its samples, up to ``size``, in the order it gives
    them, as a :class:`CalibrationSet` that can be read again (the pipelines calibrate more than once, and NNCF and
    the cache key need the array). The fingerprint covers the samples' bytes."""
    reader = reader_for(source, "input")
    parts: list[np.ndarray] = []
    n = 0
    while size is None or n < size:
        batch = reader.get_next()
        if not batch:
            break
        if len(batch) != 1:
            raise EdgekitError(f"calibration reader gave {len(batch)} inputs ({', '.join(batch)}): edgekit's "
                               "models have one image input")
        arr = np.asarray(next(iter(batch.values())), dtype=np.float32)
        parts.append(arr)
        n += len(arr)
    if not parts:
        raise EdgekitError(f"calibration reader {type(source).__name__} gave no samples: its get_next() returned "
                           "None at once")
    x = np.ascontiguousarray(np.concatenate(parts)[:size])
    digest = hashlib.sha256(json.dumps(list(x.shape)).encode() + x.tobytes()).hexdigest()
    warnings = [] if len(x) >= MIN_RECOMMENDED else [
        f"{len(x)} calibration samples is few: INT8 ranges are more reliable from {MIN_RECOMMENDED}+"]
    return CalibrationSet(x, type(source).__name__, "reader", [], digest, None, warnings)


def cache_key(model_sha256: str, preprocess: Preprocess, method: dict, calib: CalibrationSet) -> str:
    """Everything the ranges depend on; any change misses the cache."""
    fields = {"version": CACHE_VERSION, "model": model_sha256, "preprocess": preprocess.to_dict(),
              "method": method, "samples": calib.fingerprint, "n": int(len(calib))}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def read_cache(path: Path, key: str) -> dict | None:
    """The onnxruntime ranges stored under ``key``, or None (missing, corrupt or stale: never trusted)."""
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        if doc.get("edgekit_calibration_cache") != CACHE_VERSION or doc.get("key") != key:
            raise ValueError("version or key does not match")
        from onnxruntime.quantization.calibrate import TensorsData

        TensorsData.from_dict(doc["ranges"])  # validates the payload
        return doc["ranges"]
    except Exception as exc:
        log.warning("ignoring calibration cache %s (%s); recomputing it", path, first_line(exc))
        return None


def write_cache(path: Path, key: str, ranges: dict, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"edgekit_calibration_cache": CACHE_VERSION, "key": key, "meta": meta, "ranges": ranges})
