"""The bad-input battery: every command and flag family fed broken (and odd-but-valid) input through the
INSTALLED `edgekit` command (PYTHONPATH points it at this tree).

Each failing case must exit with its code, print exactly one line naming the file and the fix, leave no output
folder or staging folder behind, and touch no input file. Each odd-but-valid case must succeed and say in the
report what it converted. The cases run two at a time (the machine has two cores) in one module fixture;
the parametrized tests then judge each result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import badkit
import pytest
from helpers import DIGITS_FLAGS, near_black_images

ROOT = Path(__file__).resolve().parents[2]
EDGEKIT = Path(sys.executable).parent / "edgekit"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
X = ["export", "squeezenet1_1", "--weights", "random", "--input-size", "32"]  # squeezenet runs from 17 px up


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    says: tuple[str, ...]  # in the one error line; for code 0, in the report's notes
    out: str | None = None  # the output folder: absent after a failure, complete after a success
    preexec: object = None


def _full_disk():  # RLIMIT_FSIZE: a write past 300 kB fails with EFBIG, as on a full disk (Python ignores SIGXFSZ)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


CASES = [
    # images, in --eval-data and --calib-data
    Case("img-bomb-eval", X + ["--eval-data", "bomb", "--out", "out/a"], 2,
         ("bomb/bomb.png is 196000000 pixels", "decompression-bomb", "resize it"), "out/a"),
    Case("img-bomb-calib", X + ["--int8", "--calib-data", "bomb", "--calib-cache", "cache/b.json", "--out", "out/b"], 2,
         ("bomb/bomb.png is 196000000 pixels", "remove it from the folder"), "out/b"),
    Case("img-bomb-profile", ["profile", "onnx/tiny.onnx", "--eval-data", "bomb", "--out", "out/c"], 2,
         ("bomb/bomb.png", "decompression-bomb"), "out/c"),
    Case("flag-reduce-range-tensorrt", X + ["--int8", "--target", "tensorrt", "--reduce-range", "--out", "out/rr"], 2,
         ("TensorRT takes full-range symmetric int8", "drop --reduce-range"), "out/rr"),
    Case("img-truncated", X + ["--eval-data", "truncated", "--out", "out/d"], 2,
         ("truncated/truncated.jpg is not a readable image", "remove it"), "out/d"),
    Case("img-truncated-prune", ["prune", "squeezenet1_1", "--weights", "random", "--input-size", "32", "--ratio",
                                 "0.3", "--finetune-data", "truncated", "--out", "out/e"], 2,
         ("truncated/truncated.jpg is not a readable image",), "out/e"),
    Case("img-zero-bytes", X + ["--eval-data", "empty-file", "--out", "out/f"], 2,
         ("empty-file/empty.jpg is not a readable image",), "out/f"),
    Case("img-text-as-png", X + ["--eval-data", "text-as-png", "--out", "out/g"], 2,
         ("text-as-png/notes.png is not a readable image",), "out/g"),
    Case("img-no-images", X + ["--eval-data", "no-images", "--out", "out/h"], 2,
         ("no-images holds no images", "point at a folder of images"), "out/h"),
    Case("img-file-not-folder", X + ["--eval-data", "cmyk/cmyk.jpg", "--out", "out/i"], 2,
         ("cmyk/cmyk.jpg is a file, not a folder",), "out/i"),
    Case("img-missing-folder", X + ["--calib-data", "nowhere", "--int8", "--out", "out/j"], 2,
         ("image folder nowhere does not exist",), "out/j"),
    # odd but valid: succeed, converting as a viewer would, and say so
    Case("img-cmyk", X + ["--eval-data", "cmyk", "--out", "out/k"], 0, ("converted to RGB: 1 CMYK",), "out/k"),
    Case("img-16bit", X + ["--eval-data", "16bit", "--out", "out/l"], 0, ("converted to RGB: 1 I;16",), "out/l"),
    Case("img-exif-rotated", X + ["--eval-data", "exif", "--out", "out/m"], 0, ("1 EXIF-rotated",), "out/m"),
    Case("img-1x1", X + ["--eval-data", "1x1", "--out", "out/n"], 0, (), "out/n"),
    Case("img-animated-gif", X + ["--eval-data", "gif", "--out", "out/o"], 0, ("1 animated (first frame)",), "out/o"),
    Case("img-symlink-loops", X + ["--eval-data", "symlink-loop", "--out", "out/p"], 0,
         ("skipped 3 non-image files",), "out/p"),
    # checkpoints
    Case("ckpt-malicious-pickle", ["export", "squeezenet1_1", "--weights", "ckpt/evil.pth", "--out", "out/q"], 2,
         ("ckpt/evil.pth holds pickled Python objects", "--trust-checkpoint"), "out/q"),
    Case("ckpt-malicious-zip", ["export", "squeezenet1_1", "--weights", "ckpt/evil-zip.pth", "--out", "out/r"], 2,
         ("ckpt/evil-zip.pth holds pickled Python objects", "GLOBAL posix.system", "state_dict()"), "out/r"),
    Case("ckpt-other-architecture", ["export", "squeezenet1_1", "--weights", "ckpt/other-arch.pth", "--out", "out/s"],
         2, ("ckpt/other-arch.pth does not fit squeezenet1_1", "another model"), "out/s"),
    Case("ckpt-truncated", ["export", "squeezenet1_1", "--weights", "ckpt/truncated.pth", "--out", "out/t"], 2,
         ("ckpt/truncated.pth is truncated or corrupt", "copy it again"), "out/t"),
    Case("ckpt-empty", ["export", "squeezenet1_1", "--weights", "ckpt/empty.pth", "--out", "out/u"], 2,
         ("ckpt/empty.pth is truncated or corrupt",), "out/u"),
    Case("ckpt-wrong-class-count", ["export", "squeezenet1_1", "--weights", "ckpt/squeezenet-10.pth", "--num-classes",
                                    "5", "--out", "out/v"], 2,
         ("--num-classes 5 contradicts ckpt/squeezenet-10.pth", "10 outputs"), "out/v"),
    Case("ckpt-folder", ["export", "squeezenet1_1", "--weights", "ckpt/folder.pth", "--out", "out/w"], 2,
         ("--weights ckpt/folder.pth is a folder (it holds model.pth)", "checkpoint file itself"), "out/w"),
    Case("ckpt-missing", ["export", "squeezenet1_1", "--weights", "ckpt/nope.pth", "--out", "out/x"], 2,
         ("weights file ckpt/nope.pth not found",), "out/x"),
    # ONNX
    Case("onnx-truncated", ["export", "onnx/truncated.onnx", "--out", "out/y"], 2,
         ("onnx/truncated.onnx is not a valid ONNX model", "re-export it"), "out/y"),
    Case("onnx-not-onnx", ["profile", "onnx/text.onnx", "--out", "out/z"], 2,
         ("onnx/text.onnx is not a valid ONNX model",), "out/z"),
    Case("onnx-external-data-missing", ["export", "onnx/ext/external.onnx", "--out", "out/aa"], 2,
         ("onnx/ext/external.onnx keeps its weights in onnx/ext/external.onnx.data, which is missing",), "out/aa"),
    Case("onnx-non-classifier", ["export", "onnx/feature-map.onnx", "--out", "out/ab"], 2,
         ("onnx/feature-map.onnx outputs shape (1, 8, 16, 16), not (N, classes)",), "out/ab"),
    Case("onnx-non-classifier-profile", ["profile", "onnx/feature-map.onnx", "--out", "out/ac"], 2,
         ("onnx/feature-map.onnx outputs shape",), "out/ac"),
    Case("onnx-two-inputs", ["export", "onnx/two-inputs.onnx", "--out", "out/ad"], 2,
         ("onnx/two-inputs.onnx: edgekit takes classifiers with one image input", "only input"), "out/ad"),
    Case("onnx-dynamic-hw", ["export", "onnx/dynamic-hw.onnx", "--out", "out/ae"], 0,
         ("dynamic input height/width: used at 224x224", "--input-size"), "out/ae"),
    Case("onnx-wrong-input-size", ["export", "onnx/tiny.onnx", "--input-size", "64", "--out", "out/af"], 2,
         ("onnx/tiny.onnx takes 32x32 images, not 64", "--input-size 32"), "out/af"),
    # sizes
    Case("input-size-below-stride", ["export", "squeezenet1_1", "--weights", "random", "--input-size", "7",
                                     "--out", "out/ag"], 2,
         ("--input-size 7 is too small for squeezenet1_1", "pass --input-size 17 or more"), "out/ag"),
    Case("input-size-zero", ["export", "squeezenet1_1", "--weights", "random", "--input-size", "0", "--out", "out/ah"],
         2, ("--input-size 0: give a positive size",), "out/ah"),
    # folders
    Case("out-under-a-file", X + ["--out", "notes.txt/sub"], 2,
         ("notes.txt is a file, so notes.txt/sub cannot be a folder", "choose another --out"), "notes.txt/sub"),
    Case("out-existing", X + ["--out", "existing"], 2, ("existing already exists", "--force"), None),
    Case("out-is-the-input", X + ["--eval-data", "cmyk", "--out", "cmyk"], 2, ("cmyk already exists",), None),
    Case("out-unwritable", X + ["--out", "/sys/edgekit-battery"], 2,
         ("cannot write /sys/edgekit-battery (", "choose another --out"), "/sys/edgekit-battery"),
    Case("out-disk-full", X + ["--out", "out/full"], 2,
         ("cannot write out/full (the file size limit was reached)", "free space"), "out/full", _full_disk),
    Case("out-inside-the-input", X + ["--eval-data", "1x1", "--out", "1x1/edgekit-out"], 0, (), "1x1/edgekit-out"),
    # recipes and budgets
    Case("recipe-typo", ["run", "recipes/typo.yaml"], 2,
         ("recipes/typo.yaml:5: quantize.precison: unknown key (did you mean precision?)",), None),
    Case("recipe-wrong-type", ["run", "recipes/wrong-type.yaml"], 2,
         ("recipes/wrong-type.yaml:6: quantize.calib_size: expected int, got 'many'",), None),
    Case("recipe-not-yaml", ["run", "recipes/not-yaml.yaml"], 2, ("recipes/not-yaml.yaml:2: not valid YAML",), None),
    Case("recipe-no-model", ["run", "recipes/no-model.yaml"], 2,
         ("recipes/no-model.yaml:1: top level: missing required key model",), None),
    Case("recipe-set-typo", ["run", "recipes/clean.yaml", "--set", "wieghts=random"], 2,
         ("recipes/clean.yaml (with --set):4: wieghts: unknown key (did you mean weights?)",), None),
    Case("recipe-set-wrong-type", ["run", "recipes/clean.yaml", "--set", "quantize.calib_size=lots"], 2,
         ("quantize.calib_size: expected int, got 'lots'",), None),
    Case("budget-typo", ["check", "good/report.json", "--budget", "recipes/budget-typo.yaml"], 2,
         ("budget-typo.yaml:1: max_size: unknown key (did you mean max_size_mb?)",), None),
    Case("budget-wrong-type", ["check", "good/report.json", "--budget", "recipes/budget-type.yaml"], 2,
         ("budget-type.yaml:1: max_size_mb: expected float, got [3]",), None),
    Case("budget-unit", ["check", "good/report.json", "--budget", "recipes/budget-unit.yaml"], 2,
         ("max_latency_ms: expected float, got '20ms' (write 20: the unit is in the key's name)",), None),
    Case("budget-negative", ["check", "good/report.json", "--budget", "recipes/budget-negative.yaml"], 2,
         ("max_size_mb must not be negative",), None),
    Case("check-growth-unit", ["check", "good/report.json", "--baseline", "good/report.json", "--max-size-growth",
                               "2MB"], 2, ("--max-size-growth '2MB': give a percentage",), None),
    Case("check-no-accuracy", ["check", "good/report.json", "--baseline", "good/report.json",
                               "--max-accuracy-drop", "0.5"], 2,
         ("cannot check --max-accuracy-drop: good/report.json and good/report.json have no top-1 accuracy",
          "--eval-data"), None),
    Case("check-report-missing", ["check", "nope/report.json", "--baseline", "good/report.json"], 2,
         ("cannot read nope/report.json",), None),
    Case("compare-not-a-report", ["compare", "good/report.json", "ckpt/squeezenet-10.pth"], 2,
         ("ckpt/squeezenet-10.pth is not valid JSON",), None),
    # bundles (edgekit build reads the manifest before it needs TensorRT)
    Case("bundle-tampered", ["build", "bundle-tampered"], 2,
         ("is missing or changed since the bundle was made", "copy the bundle again"), "bundle-tampered/build"),
    Case("bundle-path-escapes", ["build", "bundle-escape"], 2,
         ("bundle-escape/manifest.json is not a valid bundle manifest", "../outside.onnx lies outside the bundle"),
         "bundle-escape/build"),
    Case("bundle-bad-manifest", ["build", "bundle-badjson"], 2,
         ("bundle-badjson/manifest.json is not valid JSON",), "bundle-badjson/build"),
]


def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every input file (outputs under out/ and the cache are the commands' own)."""
    snap = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] in ("out", "cache") or "edgekit-out" in rel.parts or not p.is_file() or p.is_symlink():
            continue
        snap[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def _edgekit(args, cwd: Path, preexec=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(EDGEKIT), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300,
                          preexec_fn=preexec, **kw)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    root = tmp_path_factory.mktemp("badkit")
    badkit.images(root)
    badkit.checkpoints(root)
    badkit.onnx_files(root)
    badkit.recipes(root)
    (root / "notes.txt").write_text("my notes\n")
    (root / "existing").mkdir()
    (root / "existing" / "keep.txt").write_text("mine\n")
    (root / "out").mkdir()
    r = _edgekit(["export", "squeezenet1_1", "--weights", "random", "--input-size", "32", "--fp16", "--target",
                  "jetson", "--out", "good"], root)
    assert r.returncode == 0, r.stderr
    badkit.tamper_bundle(root / "good" / "bundle", root)
    return root


@pytest.fixture(scope="module")
def results(kit, request):
    """Run the selected cases (all, or those -k picked), two at a time; snapshot the inputs before and after."""
    picked = {item.callspec.params["case"].id for item in request.session.items
              if hasattr(item, "callspec") and "case" in item.callspec.params}
    cases = [c for c in CASES if c.id in picked] or CASES
    before = _snapshot(kit)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip([c.id for c in cases], pool.map(lambda c: _edgekit(c.args, kit, c.preexec), cases)))
    return done, before, _snapshot(kit)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, kit, results):
    done, _, _ = results
    r = done[case.id]
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == case.code, (r.returncode, r.stderr[-2000:])
    if case.code:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr  # one line, nothing else
        for s in case.says:
            assert s in lines[0], lines[0]
        if case.out:
            out = kit / case.out
            assert not out.exists(), f"{out} half-written"
        leftovers = [p for p in kit.rglob("*.partial")] + [p for p in Path("/sys").glob(".edgekit-battery*")]
        assert not leftovers, leftovers
    else:
        rep = json.loads((kit / case.out / "report.json").read_text())
        notes = " | ".join(rep["notes"])
        for s in case.says:
            assert s in notes, notes


def test_no_user_file_touched(kit, results):
    _, before, after = results
    assert after == before
    assert (kit / "existing" / "keep.txt").read_text() == "mine\n"
    assert not (kit / badkit.MARKER).exists(), "the malicious checkpoint ran its code"


def test_odd_images_convert_as_a_viewer_shows_them(kit):
    """16-bit grey scales to 8 bits (PIL's convert would clip it to white); EXIF orientation is applied."""
    from collections import Counter

    import numpy as np

    from edgekit.data.images import load_image

    seen = Counter()
    grey = np.asarray(load_image(kit / "16bit" / "grey16.png", seen))
    assert grey.shape == (40, 40, 3) and (grey == 128).all()  # 32896 / 257 = 128
    rotated = load_image(kit / "exif" / "rotated.jpg", seen)
    assert rotated.size == (48, 64)  # stored 64x48, displayed upright as 48x64
    assert seen == Counter({"I;16": 1, "EXIF-rotated": 1})


def test_two_exports_into_one_out(kit):
    """Both start before either finishes: one result is kept whole, the other run says so; no staging left."""
    procs = [subprocess.Popen([str(EDGEKIT), *X, "--out", "out/race"], cwd=kit, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    res = [(p.wait(300), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in res)
    assert codes == [0, 2], res
    err = next(e for c, e in res if c == 2)
    assert ("out/race was written by another run while this one worked" in err or "out/race already exists" in err), err
    rep = json.loads((kit / "out" / "race" / "report.json").read_text())
    assert rep["artifact"]["file"] == "model.onnx" and (kit / "out" / "race" / "model.onnx").stat().st_size > 1e6
    assert not list(kit.glob("out/.race*")), list(kit.glob("out/.race*"))


def test_two_processes_write_one_calibration_cache(kit):
    cache = kit / "cache" / "shared.json"
    procs = [subprocess.Popen([str(EDGEKIT), *X, "--int8", "--calib-size", "8", "--calib-cache", str(cache),
                               "--out", f"out/cal{i}"], cwd=kit, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    res = [(p.wait(300), p.stderr.read()) for p in procs]
    assert [c for c, _ in res] == [0, 0], res
    doc = json.loads(cache.read_text())  # whole JSON: one writer's replace won, not a mix of both
    assert doc["ranges"] and len(list(cache.parent.glob(".shared.json.*"))) == 0
    keys = {json.loads((kit / f"out/cal{i}/report.json").read_text())["int8"]["cache"]["key"] for i in range(2)}
    assert keys == {doc["key"]}


def test_interrupt_during_calibration(kit, tmp_path):
    """Ctrl-C while calibration images are read: exit 130, one line, no output folder, no staging, no cache."""
    import pty

    calib = _photo_folder(kit / "many", 500)  # real photos, long enough to read that Ctrl-C lands inside
    master, slave = pty.openpty()  # a terminal for stderr, so the progress bar names the stage
    with open(tmp_path / "stdout.txt", "wb") as stdout:  # a file, never a pipe nobody reads while it runs
        p = subprocess.Popen([str(EDGEKIT), *X, "--int8", "--calib-data", calib.name, "--calib-cache",
                              "cache/int.json", "--out", "out/int"], cwd=kit, env={**ENV, "COLUMNS": "120"},
                             stdout=stdout, stderr=slave, preexec_fn=_ctrl_c_as_at_a_terminal)
    os.close(slave)
    seen = _read_until(master, p, b"reading calibration images")
    assert b"reading calibration images" in seen, seen[-500:]
    assert list(kit.glob("out/.int.*.partial")), "the export was not staging yet"
    p.send_signal(signal.SIGINT)
    code, seen = _drain_until_exit(master, p, seen)
    os.close(master)
    assert code == 130, seen[-800:]
    assert b"interrupted" in seen and b"nothing was written" in seen and b"Traceback" not in seen, seen[-800:]
    assert not (kit / "out" / "int").exists() and not list(kit.glob("out/.int*"))
    assert not (kit / "cache" / "int.json").exists()


def _ctrl_c_as_at_a_terminal() -> None:
    """In the child before it starts: Ctrl-C's default action. A job started in the background of a script
    (`.ci/run &`, nohup) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _read_until(master: int, p, stage: bytes, seconds: float = 240) -> bytes:
    """What the run shows on its terminal until ``stage`` appears (or it exits, or time runs out)."""
    import select

    seen, deadline = b"", time.time() + seconds
    while stage not in seen and time.time() < deadline and p.poll() is None:
        if select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    return seen


def _drain_until_exit(master: int, p, seen: bytes, seconds: float = 120) -> tuple[int, bytes]:
    """Keep reading the terminal while the run shuts down: a full terminal buffer would block its last writes."""
    import select

    deadline = time.time() + seconds
    while time.time() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            seen += chunk
            if chunk:
                continue
        if p.poll() is not None:
            break
    code = p.wait(5)  # raises if it is still running: a hang fails the test instead of blocking CI
    try:
        while select.select([master], [], [], 0)[0] and (chunk := os.read(master, 4096)):
            seen += chunk
    except OSError:
        pass
    return code, seen


# --- Ctrl-C at the later stages: the guard, --optimize, fine-tuning -------------------------------------------------
# Each run gets a terminal for stderr (so the progress bars draw), and its own process group, which receives the
# SIGINT as a terminal's Ctrl-C would deliver it, once the stage's own progress text is on screen.

LEFTOVER_TEMP = ("edgekit-", "tmp", "ort.quant.", "pre.quant.")  # temp folders of edgekit, tempfile, onnxruntime


def _photo_folder(folder: Path, n: int) -> Path:
    """``n`` copies of the built-in photos (hard links, in turn)."""
    folder.mkdir(parents=True)
    photos = sorted(badkit.PHOTOS.glob("*.jpg"))
    for i, photo in enumerate(photos):
        (folder / f"{i:03d}.jpg").write_bytes(photo.read_bytes())
    for i in range(len(photos), n):
        os.link(folder / f"{i % len(photos):03d}.jpg", folder / f"{i:03d}.jpg")
    return folder


def _ctrl_c_at(stage: bytes, args: list[str], cwd: Path, refuse: bytes | None = None,
               sig: int = signal.SIGINT) -> tuple[int, str]:
    """Run the installed command; once ``stage`` is on its terminal, Ctrl-C its process group (``sig`` SIGTERM:
    `kill` its main process, as a CI runner's timeout or a scheduler does).

    Returns the exit code and what it showed on the terminal. ``refuse``: text that must not be there by then."""
    import pty

    tmpdir = cwd / "tmpdir"
    tmpdir.mkdir()
    master, slave = pty.openpty()
    with open(cwd / "stdout.txt", "wb") as out:  # a file, never a pipe nobody reads while it runs
        p = subprocess.Popen([str(EDGEKIT), *args], cwd=cwd, env={**ENV, "COLUMNS": "120", "TMPDIR": str(tmpdir)},
                             stdout=out, stderr=slave, start_new_session=True,
                             preexec_fn=_ctrl_c_as_at_a_terminal)
    os.close(slave)
    running = True
    try:
        seen = _read_until(master, p, stage)
        assert stage in seen, (p.poll(), seen[-800:])
        assert refuse is None or refuse not in seen, f"{refuse} already on screen: the stage ended before Ctrl-C"
        if sig == signal.SIGINT:
            os.killpg(p.pid, signal.SIGINT)
        else:
            p.send_signal(sig)
        code, seen = _drain_until_exit(master, p, seen)
        for _ in range(100):  # the group is gone once its last process has exited: no worker is left running
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                running = False
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"a process of the interrupted run is still running 10 s after it exited (group {p.pid})")
    finally:
        if running:  # this run's group only, and only while it exists
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        os.close(master)
    stdout = (cwd / "stdout.txt").read_bytes()
    assert b"Traceback" not in stdout, stdout[-3000:]
    leftovers = [t.name for t in tmpdir.iterdir() if t.name.startswith(LEFTOVER_TEMP)]
    assert not leftovers, f"temporary files left in TMPDIR: {leftovers}"
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))  # without colours


def _assert_interrupted(code: int, seen: str, out: Path) -> None:
    """Exit 130 and the one line; no output folder, no staging folder (.NAME.*.partial) or state file beside it."""
    assert code == 130, seen[-800:]
    assert "interrupted: nothing was written" in seen, seen[-800:]
    assert "Traceback" not in seen, seen[-3000:]
    assert not out.exists(), f"{out} written after Ctrl-C"
    beside = list(out.parent.glob(f".{out.name}*")) if out.parent.exists() else []
    assert not beside, beside


def _assert_whole_cache(cache: Path) -> None:
    """A calibration cache, if there is one, is whole (written before the stage began) and has no temp file."""
    if cache.exists():
        doc = json.loads(cache.read_text())
        assert doc["key"] and doc["ranges"], cache
    assert not list(cache.parent.glob(f".{cache.name}.*")), list(cache.parent.glob(f".{cache.name}.*"))


def test_interrupt_during_int8_guard(digits, tmp_path):
    """Ctrl-C while the accuracy guard measures each layer's sensitivity (calibrated on three near-black images,
    INT8 loses many points, so --max-drop 0 sends it through the guard)."""
    import conftest

    blank = near_black_images(tmp_path / "blank")
    inputs = {"eval": _snapshot(digits[1]), "calib": _snapshot(blank),
              "model": hashlib.sha256(conftest.DIGITS_MODEL.read_bytes()).hexdigest()}
    code, seen = _ctrl_c_at(b"INT8 sensitivity per layer",
                            ["export", "mobilenet_v2", "--weights", str(conftest.DIGITS_MODEL), "--eval-data",
                             str(digits[1]), "--max-images", "60", "--int8", "--calib-data", "blank", "--max-drop", "0",
                             "--calib-cache", "cache/guard.json", "--out", "out/guard", *DIGITS_FLAGS], tmp_path,
                            refuse=b"INT8 accuracy guard")
    _assert_interrupted(code, seen, tmp_path / "out" / "guard")
    _assert_whole_cache(tmp_path / "cache" / "guard.json")
    assert {"eval": _snapshot(digits[1]), "calib": _snapshot(blank),
            "model": hashlib.sha256(conftest.DIGITS_MODEL.read_bytes()).hexdigest()} == inputs


def test_terminate_during_calibration(tmp_path):
    """`kill` (SIGTERM) while the decoding workers read calibration images, inside the staging folder: exit 143,
    one line, no staging folder left, no temporary copy, no worker left running."""
    _photo_folder(tmp_path / "many", 500)
    code, seen = _ctrl_c_at(b"reading calibration images", [*X, "--int8", "--calib-data", "many", "--out",
                                                             "out/term"], tmp_path, sig=signal.SIGTERM)
    assert code == 143 and "terminated: nothing was written" in seen and "Traceback" not in seen, seen[-800:]
    assert not (tmp_path / "out" / "term").exists() and not list((tmp_path / "out").glob(".term*"))


def test_interrupt_during_optimize(tmp_path):
    """Ctrl-C while --optimize times its candidates (the candidate files are built by then)."""
    calib = _photo_folder(tmp_path / "calib", 60)
    before = _snapshot(calib)
    code, seen = _ctrl_c_at(b"timing onnxruntime-", [*X, "--optimize", "latency", "--calib-data", "calib",
                                                     "--calib-size", "20", "--calib-cache", "cache/opt.json",
                                                     "--out", "out/opt"], tmp_path)
    _assert_interrupted(code, seen, tmp_path / "out" / "opt")
    for cache in (tmp_path / "cache").glob("opt*.json"):  # opt.json, opt-s8.json
        _assert_whole_cache(cache)
    assert _snapshot(calib) == before


def test_interrupt_during_finetune(tmp_path):
    """Ctrl-C in the first fine-tuning epoch (one image a step): no checkpoint is left to resume from."""
    data = _photo_folder(tmp_path / "ft", 150)
    before = _snapshot(data)
    code, seen = _ctrl_c_at(b"fine-tuning epoch 1/", ["prune", "squeezenet1_1", "--weights", "random", "--input-size",
                                                      "32", "--ratio", "0.3", "--finetune-data", "ft", "--batch-size",
                                                      "1", "--epochs", "2", "--out", "out/ft"], tmp_path,
                            refuse=b"held-out")
    _assert_interrupted(code, seen, tmp_path / "out" / "ft")  # also .ft.finetune-state.pt, where finetune saves
    assert not list(tmp_path.rglob("*.pt")), list(tmp_path.rglob("*.pt"))
    assert _snapshot(data) == before
