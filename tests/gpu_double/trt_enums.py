"""TensorRT's enums as the real bindings define them, per major version.

Read from the real ``tensorrt_bindings`` wheels (tensorrt-cu12-bindings 10.3.0 and tensorrt-cu13-bindings
11.4.0.106), imported over stand-in native libraries the way tools/check_tensorrt_api.py does, and written here by
hand; ``tests/backends/test_tensorrt_api.py::test_the_double_matches_the_real_bindings`` checks every name and value
against those wheels wherever the package index is reachable. Members edgekit never touches are left out.
"""

from __future__ import annotations

import enum

REAL = {
    "10": {
        "DataType": {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "FP8": 6, "BF16": 7,
                     "INT64": 8, "INT4": 9},
        "NetworkDefinitionCreationFlag": {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1},
        "BuilderFlag": {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "TF32": 6,
                        "SPARSE_WEIGHTS": 7, "OBEY_PRECISION_CONSTRAINTS": 9, "PREFER_PRECISION_CONSTRAINTS": 10,
                        "DIRECT_IO": 11, "FP8": 15, "BF16": 17, "INT4": 22},
    },
    "11": {
        "DataType": {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "FP8": 6, "BF16": 7,
                     "INT64": 8, "INT4": 9, "FP4": 10, "E8M0": 11},
        "NetworkDefinitionCreationFlag": {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1,
                                          "PREFER_AOT_PYTHON_PLUGINS": 2},
        "BuilderFlag": {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "TF32": 6, "SPARSE_WEIGHTS": 7, "DIRECT_IO": 11},
    },
}
COMMON = {
    "DeviceType": {"GPU": 0, "DLA": 1},
    "MemoryPoolType": {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1, "DLA_LOCAL_DRAM": 2, "DLA_GLOBAL_DRAM": 3},
    "ProfilingVerbosity": {"LAYER_NAMES_ONLY": 0, "NONE": 1, "DETAILED": 2},
    "LayerInformationFormat": {"ONELINE": 0, "JSON": 1},
    "TensorIOMode": {"NONE": 0, "INPUT": 1, "OUTPUT": 2},
    "Severity": {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4},
}
# the precision flags 11.x removed (and a strongly typed 10.x network refuses)
PRECISION_FLAGS = ("FP16", "INT8", "BF16", "FP8", "INT4", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS")


def enums(major: str) -> dict[str, type[enum.IntEnum]]:
    """The enum classes for TensorRT ``major`` ("10" or "11"). Real pybind11 enums compare and ``int()`` like
    these; their ``str()`` is "DataType.HALF", which IntEnum's differs from on Python 3.11+ ("1")."""
    tables = {**COMMON, **REAL[major]}
    return {name: enum.IntEnum(name, members) for name, members in tables.items()}
