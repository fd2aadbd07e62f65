"""Check every TensorRT and cuda-python attribute path edgekit uses against the real Python bindings, no GPU needed.

The bindings wheels (``tensorrt-cuXX-bindings``, about 1.3 MB) hold only the Python extension; it links
libnvinfer, libnvonnxparser and libnvinfer_plugin, of which it calls nine C entry points
(``createInferBuilder_INTERNAL`` ...). A stand-in library exporting those nine, compiled here with the C
compiler under each soname, lets the real extension import, so its classes, enums and members can be
checked. Nothing can be built or run this way: it checks names, not behaviour.

    python tools/check_tensorrt_api.py                 # TensorRT 10.3 (JetPack 6), 10.16 (latest 10.x), 11.4
    python tools/check_tensorrt_api.py --versions 10.3.0 11.4.0.106

Needs the network (pip download) the first time, and cc. Exit 1 when a path is missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSIONS = ("10.3.0", "10.16.1.11", "11.4.0.106")
SYMBOLS = ("createInferBuilder_INTERNAL", "createInferRefitter_INTERNAL", "createInferRuntime_INTERNAL",
           "createNvOnnxParserRefitter_INTERNAL", "createNvOnnxParser_INTERNAL", "getBuilderPluginRegistry",
           "getNvOnnxParserVersion", "getPluginRegistry", "initLibNvInferPlugins")

# every tensorrt path edgekit/backends/tensorrt/*.py touch; "10:" marks paths only 10.x must have
TRT_PATHS = (
    "__version__", "Builder", "Runtime", "OnnxParser", "ILogger", "ILogger.Severity.WARNING", "nptype",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED", "MemoryPoolType.WORKSPACE", "10:BuilderFlag.FP16",
    "BuilderFlag.SPARSE_WEIGHTS", "BuilderFlag.GPU_FALLBACK", "DeviceType.DLA", "ProfilingVerbosity.DETAILED",
    "LayerInformationFormat.JSON", "TensorIOMode.INPUT",
    "Builder.create_network", "Builder.create_builder_config", "Builder.num_DLA_cores",
    "Builder.create_optimization_profile", "Builder.build_serialized_network",
    "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.set_flag", "IBuilderConfig.default_device_type",
    "IBuilderConfig.DLA_core", "IBuilderConfig.builder_optimization_level", "IBuilderConfig.add_optimization_profile",
    "IBuilderConfig.profiling_verbosity", "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache",
    "IBuilderConfig.get_timing_cache", "ITimingCache.serialize", "IOptimizationProfile.set_shape",
    "OnnxParser.parse_from_file", "OnnxParser.num_errors", "OnnxParser.get_error",
    "Runtime.deserialize_cuda_engine", "ICudaEngine.create_engine_inspector", "ICudaEngine.create_execution_context",
    "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_shape", "ICudaEngine.get_tensor_dtype", "ICudaEngine.get_tensor_profile_shape",
    "EngineInspector.execution_context", "EngineInspector.get_engine_information",
    "IExecutionContext.set_input_shape", "IExecutionContext.get_tensor_shape", "IExecutionContext.set_tensor_address",
    "IExecutionContext.execute_async_v3", "Runtime.DLA_core",
)
# what edgekit/backends/tensorrt/cudamem.py and edgekit/pipeline/doctor.py call in cuda.bindings.runtime
CUDART_PATHS = (
    "cudaGetDeviceCount", "cudaGetDeviceProperties", "cudaGetErrorString", "cudaRuntimeGetVersion",
    "cudaDriverGetVersion", "cudaStreamCreate", "cudaStreamSynchronize", "cudaStreamDestroy", "cudaMalloc",
    "cudaMallocHost", "cudaFree", "cudaFreeHost", "cudaMemcpyAsync", "cudaMemcpyKind.cudaMemcpyHostToDevice",
    "cudaMemcpyKind.cudaMemcpyDeviceToHost", "cudaEventCreate", "cudaEventRecord", "cudaEventSynchronize",
    "cudaEventElapsedTime", "cudaEventDestroy", "cudaError_t.cudaSuccess", "cudaError_t.cudaErrorInsufficientDriver",
    "cudaStreamBeginCapture", "cudaStreamEndCapture", "cudaGraphInstantiate", "cudaGraphLaunch", "cudaGraphDestroy",
    "cudaGraphExecDestroy", "cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal",
)

_PROBE = """
import json, sys
import tensorrt_bindings as trt
out = {"version": trt.__version__, "missing": []}
for path in json.loads(sys.argv[1]):
    only10 = path.startswith("10:")
    node = trt
    for part in path.removeprefix("10:").split("."):
        node = getattr(node, part, None)
        if node is None:
            break
    if node is None and not (only10 and trt.__version__.startswith("11")):
        out["missing"].append(path)
print(json.dumps(out))
"""


def stand_in_libs(folder: Path, major: str) -> None:
    """libnvinfer.so.M, libnvonnxparser.so.M, libnvinfer_plugin.so.M exporting the entry points (all return 0)."""
    src = folder / "standin.c"
    src.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in SYMBOLS))
    for lib in ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin"):
        name = f"{lib}.so.{major}"
        subprocess.run(["cc", "-shared", "-fPIC", f"-Wl,-soname,{name}", "-o", str(folder / name), str(src)],
                       check=True)


def _bindings_env(version: str, work: Path) -> dict:
    """The environment in which the real bindings of ``version`` import (downloaded once into ``work``)."""
    major = version.split(".")[0]
    flavour = "cu13" if major == "11" else "cu12"
    wheels = work / "wheels"
    site = work / f"site-{version}"
    if not site.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        f"--python-version={sys.version_info.major}.{sys.version_info.minor}",
                        f"tensorrt-{flavour}-bindings=={version}", "-d", str(wheels)], check=True)
        whl = next(wheels.glob(f"tensorrt_{flavour}_bindings-{version}-*.whl"))
        zipfile.ZipFile(whl).extractall(site)
    libs = work / f"libs-{major}"
    if not libs.exists():
        libs.mkdir()
        stand_in_libs(libs, major)
    return {"LD_LIBRARY_PATH": str(libs), "PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}


def check_tensorrt(version: str, work: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(TRT_PATHS)], capture_output=True, text=True,
                       env=_bindings_env(version, work))
    if r.returncode != 0:
        return {"version": version, "error": r.stderr.strip().splitlines()[-1]}
    return json.loads(r.stdout)


_ENUMS = """
import json, sys
import tensorrt_bindings as trt
out = {}
for path, members in json.loads(sys.argv[1]).items():
    node = trt
    for part in path.split("."):
        node = getattr(node, part, None)
    out[path] = None if node is None else {m: (int(getattr(node, m)) if hasattr(node, m) else None) for m in members}
print(json.dumps(out))
"""


def real_enum_values(version: str, work: Path, tables: dict[str, list[str]]) -> dict:
    """For each enum path ("BuilderFlag", "ILogger.Severity"), the real value of each named member (None: absent)."""
    r = subprocess.run([sys.executable, "-c", _ENUMS, json.dumps(tables)], capture_output=True, text=True,
                       env=_bindings_env(version, work))
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1]}
    return json.loads(r.stdout)


def check_cudart() -> dict:
    """The installed cuda-python (it imports without a driver)."""
    try:
        from cuda.bindings import runtime
    except ImportError as exc:
        return {"error": str(exc)}
    from importlib.metadata import version

    missing = []
    for path in CUDART_PATHS:
        node = runtime
        for part in path.split("."):
            node = getattr(node, part, None)
        if node is None:
            missing.append(path)
    return {"version": version("cuda-bindings"), "missing": missing}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", nargs="*", default=list(VERSIONS))
    args = ap.parse_args()
    bad = False
    with tempfile.TemporaryDirectory() as tmp:
        for v in args.versions:
            res = check_tensorrt(v, Path(tmp))
            bad |= bool(res.get("error") or res["missing"])
            print(f"tensorrt {v}: " + (res.get("error") or f"imported {res['version']}; "
                                       f"{len(TRT_PATHS) - len(res['missing'])}/{len(TRT_PATHS)} paths present"
                                       + (f"; MISSING {', '.join(res['missing'])}" if res["missing"] else "")))
    res = check_cudart()
    bad |= bool(res.get("error") or res["missing"])
    print(f"cuda-python {res.get('version', '?')}: " + (res.get("error") or f"{len(CUDART_PATHS) - len(res['missing'])}"
                                                        f"/{len(CUDART_PATHS)} paths present" +
                                                        (f"; MISSING {', '.join(res['missing'])}" if res["missing"]
                                                         else "")))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
