"""The bad (and odd-but-valid) inputs of tests/cli/test_bad_inputs.py, written once into a folder."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

PHOTOS = Path(__file__).resolve().parents[1] / "edgekit" / "assets" / "photos"
MARKER = "pwned-by-pickle"  # the malicious checkpoint creates this file if it is ever unpickled


def _photo(i: int = 0) -> Path:
    return sorted(p for p in PHOTOS.iterdir() if p.suffix == ".jpg")[i]


def _folder(root: Path, name: str, *extra: tuple[str, bytes | None]) -> Path:
    """A folder with one real photo plus ``extra`` (name, bytes) files."""
    d = root / name
    d.mkdir()
    shutil.copy(_photo(), d / "good.jpg")
    for fname, data in extra:
        (d / fname).write_bytes(data)
    return d


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(w: int = 14000, h: int = 14000) -> bytes:
    """A real grey PNG of w x h pixels, all zero: ~190 kB on disk, 196 M pixels decoded."""
    raw = zlib.compressobj(9)
    row = b"\0" + b"\0" * w
    body = b"".join(raw.compress(row) for _ in range(h)) + raw.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def images(root: Path) -> dict[str, Path]:
    from PIL import Image

    photo = Image.open(_photo()).convert("RGB").resize((64, 48))
    cmyk = io.BytesIO()
    photo.convert("CMYK").save(cmyk, format="JPEG")
    grey16 = Image.fromarray(np.full((40, 40), 32896, np.uint16))  # 16-bit mid grey: 128 in 8 bits
    exif = io.BytesIO()
    ex = Image.Exif()
    ex[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    photo.save(exif, format="JPEG", exif=ex)
    gif = io.BytesIO()
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = {
        "bomb": _folder(root, "bomb", ("bomb.png", bomb_png())),
        "truncated": _folder(root, "truncated", ("truncated.jpg", _photo(1).read_bytes()[:2000])),
        "empty-file": _folder(root, "empty-file", ("empty.jpg", b"")),
        "text-as-png": _folder(root, "text-as-png", ("notes.png", b"these are my notes\n")),
        "cmyk": _folder(root, "cmyk", ("cmyk.jpg", cmyk.getvalue())),
        "16bit": _folder(root, "16bit", ("grey16.png", _png(grey16))),
        "exif": _folder(root, "exif", ("rotated.jpg", exif.getvalue())),
        "1x1": _folder(root, "1x1", ("dot.png", _png(Image.new("RGB", (1, 1), (200, 10, 10))))),
        "gif": _folder(root, "gif", ("anim.gif", gif.getvalue())),
        "no-images": root / "no-images",
    }
    out["no-images"].mkdir()
    (out["no-images"] / "readme.txt").write_text("no images here\n")
    loop = _folder(root, "symlink-loop")
    os.symlink("self.jpg", loop / "self.jpg")  # a file link pointing at itself
    os.symlink("b.jpg", loop / "a.jpg")
    os.symlink("a.jpg", loop / "b.jpg")
    (loop / "sub").mkdir()
    os.symlink("..", loop / "sub" / "up")  # a folder link back to its parent
    out["symlink-loop"] = loop
    return out


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def checkpoints(root: Path) -> dict[str, Path]:
    import pickle

    import torch
    import torchvision

    d = root / "ckpt"
    d.mkdir()
    sq = torchvision.models.squeezenet1_1(num_classes=10).state_dict()
    torch.save(sq, d / "squeezenet-10.pth")
    data = (d / "squeezenet-10.pth").read_bytes()
    (d / "truncated.pth").write_bytes(data[: len(data) // 2])
    (d / "empty.pth").write_bytes(b"")
    torch.save(torchvision.models.mnasnet0_5(num_classes=10).state_dict(), d / "other-arch.pth")
    with open(d / "evil.pth", "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    torch.save({"model": _Evil()}, d / "evil-zip.pth")
    (d / "folder.pth").mkdir()
    (d / "folder.pth" / "model.pth").write_bytes(data)
    return {p.stem: p for p in d.iterdir()}


def onnx_files(root: Path) -> dict[str, Path]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = root / "onnx"
    d.mkdir()
    rng = np.random.default_rng(0)

    def graph(inputs, nodes, outputs, inits):
        g = helper.make_graph(nodes, "g", inputs, outputs, inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    w = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.normal(size=(10, 8)).astype(np.float32), "fc")
    conv = helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2])
    pool = helper.make_node("GlobalAveragePool", ["c"], ["p"])
    flat = helper.make_node("Flatten", ["p"], ["f"])
    gemm = helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)

    def x_in(h="32", w_="32"):
        dims = [1, 3, int(h) if h.isdigit() else h, int(w_) if w_.isdigit() else w_]
        return helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)

    good = graph([x_in()], [conv, pool, flat, gemm], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                 [w, fc])
    onnx.save(good, d / "tiny.onnx")
    data = (d / "tiny.onnx").read_bytes()
    (d / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (d / "text.onnx").write_text("not a model\n")
    dyn = graph([x_in("h", "w")], [conv, pool, flat, gemm],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, fc])
    onnx.save(dyn, d / "dynamic-hw.onnx")
    feat = graph([x_in()], [conv], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 8, 16, 16])], [w])
    onnx.save(feat, d / "feature-map.onnx")
    two = graph([x_in(), helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 10])],
                [conv, pool, flat, gemm, helper.make_node("Add", ["y", "x2"], ["z"])],
                [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 10])], [w, fc])
    onnx.save(two, d / "two-inputs.onnx")
    ext = d / "ext"
    ext.mkdir()
    onnx.save(good, ext / "external.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="external.onnx.data", size_threshold=0)
    (ext / "external.onnx.data").unlink()
    files = {p.stem: p for p in d.glob("*.onnx")}
    files["external"] = ext / "external.onnx"
    return files


def recipes(root: Path) -> dict[str, Path]:
    d = root / "recipes"
    d.mkdir()
    base = "model: squeezenet1_1\nweights: random\nout: {out}\n"
    texts = {
        "clean": base,
        "typo": base + "quantize:\n  precison: int8\n",
        "wrong-type": base + "quantize:\n  precision: int8\n  calib_size: many\n",
        "not-yaml": "model: squeezenet1_1\n  weights: [random\n",
        "no-model": "weights: random\n",
        "budget-typo": "max_size: 3\n",
        "budget-type": "max_size_mb: [3]\n",
        "budget-unit": "max_latency_ms: 20ms\n",
        "budget-negative": "max_size_mb: -1\n",
    }
    out = {}
    for name, text in texts.items():
        p = d / f"{name}.yaml"
        p.write_text(text.format(out=root / f"recipe-out-{name}"))
        out[name] = p
    return out


def tamper_bundle(bundle: Path, root: Path) -> dict[str, Path]:
    """Copies of a real bundle: one file changed, one manifest naming a file outside the folder, one bad JSON."""
    out = {}
    t = root / "bundle-tampered"
    shutil.copytree(bundle, t)
    onnx_name = json.loads((t / "manifest.json").read_text())["onnx"]
    data = bytearray((t / onnx_name).read_bytes())
    data[-1] ^= 0xFF
    (t / onnx_name).write_bytes(bytes(data))
    out["tampered"] = t
    e = root / "bundle-escape"
    shutil.copytree(bundle, e)
    man = json.loads((e / "manifest.json").read_text())
    outside = root / "outside.onnx"
    shutil.copy(e / man["onnx"], outside)
    digest = man["files"].pop(man["onnx"])
    man["onnx"] = f"../{outside.name}"
    man["files"][man["onnx"]] = digest
    (e / "manifest.json").write_text(json.dumps(man))
    out["escape"] = e
    j = root / "bundle-badjson"
    shutil.copytree(bundle, j)
    (j / "manifest.json").write_text("{not json")
    out["badjson"] = j
    return out
