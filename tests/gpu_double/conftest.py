"""Installs the double: fake ``tensorrt``, ``cuda.bindings.runtime`` and ``pycuda`` modules in ``sys.modules``,
sharing one fake device, for the length of one test (monkeypatch restores the real modules after it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from .cudart import make_runtime, package
from .device import Costs, FakeGpu
from .pycuda import make_pycuda
from .tensorrt import make_tensorrt
from .torchcuda import make_torch


@dataclass
class Double:
    monkeypatch: pytest.MonkeyPatch
    gpu: FakeGpu | None = None
    trt: object = None
    rt: object = None
    finder: object = None

    def install(self, version: str | None = "10.3.0", cuda_python: bool = True, pycuda: bool = False,
                myelin: bool = False, **device) -> "Double":
        """A machine with ``version`` of TensorRT (None: not installed), cuda-python and/or pycuda, one GPU
        (``driver=False``: none answers; ``dla_cores``, ``cc``, ``name``, ``costs``: the device)."""
        mp = self.monkeypatch
        self.gpu = FakeGpu(**device)
        if cuda_python:
            self.rt = make_runtime(self.gpu)
            bindings = package("cuda.bindings", runtime=self.rt)
            for name, mod in (("cuda", package("cuda", bindings=bindings)), ("cuda.bindings", bindings),
                              ("cuda.bindings.runtime", self.rt)):
                mp.setitem(sys.modules, name, mod)
        else:
            for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime"):
                mp.setitem(sys.modules, name, None)
        if pycuda:
            mods, self.finder = make_pycuda(self.gpu)
            for name, mod in mods.items():
                mp.setitem(sys.modules, name, mod)
            mp.setattr(sys, "meta_path", [self.finder, *sys.meta_path])
        else:
            for name in ("pycuda", "pycuda.driver"):
                mp.setitem(sys.modules, name, None)
        if version is None:
            mp.setitem(sys.modules, "tensorrt", None)
        else:
            self.trt = make_tensorrt(self.gpu, version, myelin)
            mp.setitem(sys.modules, "tensorrt", self.trt)
        return self

    def torch(self):
        """The torch CUDA subset TorchMemory uses, on this device."""
        return make_torch(self.gpu)

    def close(self) -> None:
        sys.modules.pop("pycuda.autoprimaryctx", None)


@pytest.fixture
def double(monkeypatch):
    d = Double(monkeypatch)
    yield d
    d.close()


__all__ = ["Costs", "Double"]
