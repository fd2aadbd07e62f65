"""Parse edgekit's trtexec lines with trtexec's own option parser, compiled from the TensorRT OSS sources.

trtexec's options are parsed by ``samples/common/sampleOptions.cpp``; compiled on its own (with a stand-in
``cuda_runtime_api.h`` declaring the CUDA names the sample headers mention) and driven by a ten-line main, it
reports the options it does not know and prints its deprecation warnings, with no GPU and no TensorRT library.

    git clone https://github.com/NVIDIA/TensorRT /tmp/TensorRT    # its release/10.3 and release/11.x branches
    python tools/check_trtexec_lines.py --repo /tmp/TensorRT

Exit 1 when a line has an option the parser rejects or that it warns is deprecated.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BRANCHES = {10: "release/10.3", 11: "release/11.1"}  # JetPack 6's TensorRT; the newest 11.x in the OSS tree
DRIVER = r"""
#include "sampleOptions.h"
#include <iostream>
int main(int argc, char** argv)
{
    sample::Arguments args = sample::argsToArgumentsMap(argc, argv);
    sample::AllOptions options;
    try { options.parse(args); }
    catch (std::exception const& e) { std::cout << "ERROR " << e.what() << std::endl; return 1; }
    for (auto const& a : args) std::cout << "UNKNOWN " << a.first << std::endl;
    return args.empty() ? 0 : 1;
}
"""


def extract(repo: Path, branch: str, dest: Path, paths: list[str]) -> None:
    have = subprocess.run(["git", "-C", str(repo), "ls-tree", "--name-only", branch, *paths], capture_output=True,
                          text=True, check=True).stdout.split()
    tar = subprocess.run(["git", "-C", str(repo), "archive", branch, *have], capture_output=True, check=True).stdout
    tarfile.open(fileobj=io.BytesIO(tar)).extractall(dest)


def stand_in_cuda(tree: Path, out: Path) -> None:
    """Declarations of every cuda* name the sample headers use: calls become variadic stubs, the rest enums."""
    text = "".join(p.read_text(errors="ignore") for p in tree.rglob("*.h"))
    names = set(re.findall(r"\b(cuda[A-Z]\w*)\b", text))
    types = {"cudaStream_t", "cudaEvent_t", "cudaError_t", "cudaGraph_t", "cudaGraphExec_t", "cudaGraphNode_t",
             "cudaDeviceProp", "cudaPointerAttributes", "cudaMemcpyKind"}
    calls = {n for n in names if re.search(rf"\b{n}\s*\(", text)} - types
    consts = sorted(names - calls - types - {"cudaSuccess"})
    lines = ["#pragma once", "#include <cstddef>", "typedef int cudaError_t;", "#define CUDART_VERSION 12060",
             "#define __host__", "#define __device__", "#define __global__",
             *(f"typedef struct {t}_st* {t};" for t in ("cudaStream_t", "cudaEvent_t", "cudaGraph_t",
                                                       "cudaGraphExec_t", "cudaGraphNode_t")),
             "struct cudaDeviceProp { char name[256]; int major, minor, multiProcessorCount, clockRate, "
             "memoryClockRate, memoryBusWidth, integrated, pciBusID, pciDeviceID, pciDomainID, l2CacheSize, "
             "computeMode, concurrentKernels, canMapHostMemory; size_t totalGlobalMem; };",
             "struct cudaPointerAttributes { int type; int device; void* devicePointer; void* hostPointer; };",
             "enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, "
             "cudaMemcpyDeviceToDevice, cudaMemcpyDefault };",
             "enum { cudaSuccess = 0, " + ", ".join(c for c in consts if not c.startswith("cudaMemcpy")) + " };",
             *(f"inline cudaError_t {c}(...) {{ return 0; }}" for c in sorted(calls))]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("cuda_runtime_api.h", "cuda_runtime.h"):
        (out / name).write_text("\n".join(lines) + "\n")
    for name in ("cuda.h", "cuda_fp16.h", "cuda_bf16.h"):
        (out / name).write_text("#pragma once\n")


def split_to_string_vec(tree: Path, out: Path) -> Path:
    """sampleUtils.cpp's splitToStringVec alone (the rest of that file needs CUDA's half types and nlohmann)."""
    src = (tree / "samples/common/sampleUtils.cpp").read_text()
    i = src.index("std::vector<std::string> splitToStringVec(")
    depth, k = 0, src.index("{", i)
    while True:
        depth += {"{": 1, "}": -1}.get(src[k], 0)
        if depth == 0:
            break
        k += 1
    out.write_text("#include <cstdint>\n#include <string>\n#include <vector>\nnamespace sample {\n" + src[i:k + 1]
                   + "\n}\n")
    return out


def build_parser(repo: Path, branch: str, work: Path) -> Path:
    tree = work / branch.replace("/", "_")
    extract(repo, branch, tree, ["include", "samples/common", "samples/utils", "shared"])
    if not (tree / "include/NvOnnxParser.h").exists():  # 10.3 keeps it in the onnx-tensorrt submodule
        hdr = subprocess.run(["git", "-C", str(repo), "show", "release/10.16:include/NvOnnxParser.h"],
                             capture_output=True, text=True, check=True).stdout
        (tree / "include/NvOnnxParser.h").write_text(hdr)
    stub = tree / "stub"
    stand_in_cuda(tree / "samples", stub)
    (tree / "driver.cpp").write_text(DRIVER)
    inc = [f"-I{p}" for p in (stub, tree / "include", tree / "samples/common", tree / "shared", tree / "samples",
                              tree)]
    srcs = [tree / "driver.cpp", tree / "samples/common/sampleOptions.cpp", tree / "samples/common/logger.cpp",
            split_to_string_vec(tree, tree / "split.cpp")]
    exe = tree / "trtexec_options"
    subprocess.run(["g++", "-std=c++17", "-O0", "-w", *inc, *map(str, srcs), "-o", str(exe)], check=True)
    return exe


def edgekit_lines() -> list[tuple[int, str]]:
    from edgekit.backends.tensorrt.options import BuildOptions, GraphFacts
    from edgekit.backends.tensorrt.trtexec import trtexec_command
    from edgekit.pipeline.jetson import TRT_ON_JETSON

    shape = (1, 3, 224, 224)
    cases = [("int8", GraphFacts("int8", 10, True, "input", shape), {}),
             ("fp16", GraphFacts("fp16", 0, True, "input", shape), {}),
             ("fp16", GraphFacts("fp16", 0, True, "input", shape), {"dla_core": 0, "sparsity": True,
                                                                  "builder_optimization_level": 3}),
             ("fp32", GraphFacts("fp32", 0, True, "input", (None, *shape[1:])), {"dynamic_batch": (1, 8, 32)})]
    lines = [(v[0], trtexec_command("m.onnx", "m.engine", BuildOptions(p, **kw), v, g))
             for v in TRT_ON_JETSON for p, g, kw in cases]
    lines.append((10, trtexec_command("m.onnx", "m.engine", BuildOptions("fp16"), (10, 3, 0),
                                      GraphFacts("fp32", 0, True, "input", shape))))
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True, help="a git clone of NVIDIA/TensorRT")
    args = ap.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        parsers = {m: build_parser(args.repo, b, Path(tmp)) for m, b in BRANCHES.items()}
        for major, line in edgekit_lines():
            r = subprocess.run([str(parsers[major]), *line.split()[1:]], capture_output=True, text=True)
            said = (r.stdout + r.stderr).strip()
            ok = r.returncode == 0 and "deprecated" not in said
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {BRANCHES[major]}: {line}" + (f"\n     {said}" if said else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
