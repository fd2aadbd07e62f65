"""PyTorch eager: the reference a user would otherwise run (CPU, or CUDA in FP32/FP16, channels_last)."""

from __future__ import annotations

import numpy as np

from ..errors import EdgekitError
from .base import BackendSpec, Runner, RunnerRequest


def _devices_here() -> tuple[str, ...]:
    import torch

    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


class TorchRunner(Runner):
    """PyTorch eager. On CUDA, inputs and outputs go through page-locked host buffers with asynchronous copies and
    one wait, as TensorRT's runner copies, so a side by side compares the runtimes, not the copy modes."""

    name = "torch"

    def __init__(self, model, device: str = "cpu", fp16: bool = False, channels_last: bool = False,
                 threads: int | None = None, input_shape=None) -> None:
        super().__init__()
        self.model, self.device, self.fp16 = model, device, fp16
        self.channels_last, self.threads = channels_last, threads
        self.input_shape = list(input_shape) if input_shape else [None, 3, None, None]
        self.input_shape[0] = None
        self.host_copies = "pinned" if device.startswith("cuda") else None

    def activate_impl(self) -> None:
        import torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise EdgekitError("torch backend on CUDA asked for, but torch sees no CUDA GPU: use --device cpu")
        if self.fp16 and not self.device.startswith("cuda"):
            raise EdgekitError("torch FP16 runs on CUDA only here: drop --fp16 or use --device cuda")
        if self.threads:
            self._old_threads = torch.get_num_threads()
            torch.set_num_threads(int(self.threads))
        m = self.model.eval()
        if self.device != "cpu" or self.fp16 or self.channels_last:
            import copy

            # .to(), .half() and channels_last change a module in place: the caller's stays as it was given
            # (`edgekit profile --device cuda` exports it afterwards, with a CPU input, to count its MACs)
            m = copy.deepcopy(m)
        m = m.to(self.device)
        if self.device.startswith("cuda"):
            # fixed shapes: let cuDNN time its kernels once per shape, as a careful PyTorch user does. Without it,
            # FP16 channels_last ran 2.7-4.2x slower than FP32 on MobileNetV3-Small and EfficientNet-B0 on an
            # H100, and the PyTorch rows beside a TensorRT engine would flatter the engine
            # (benchmarks/results/gpu-h100*.json)
            self._old_cudnn_benchmark = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = True
        if self.fp16:
            m = m.half()
        if self.channels_last:
            m = m.to(memory_format=torch.channels_last)
        self._module, self._pins = m, {}

    def _prepare(self, t):
        import torch

        if self.fp16:
            t = t.half()
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _forward(self, t):
        out = self._module(t)
        return out[0] if isinstance(out, (tuple, list)) else out

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if not self.device.startswith("cuda"):
                return self._forward(self._prepare(torch.from_numpy(x))).float().numpy()
            pin_in = self._pinned("in", x.shape, torch.float32)
            pin_in.numpy()[...] = x
            out = self._forward(self._prepare(pin_in.to(self.device, non_blocking=True))).float()
            pin_out = self._pinned("out", tuple(out.shape), torch.float32)
            pin_out.copy_(out, non_blocking=True)
            torch.cuda.current_stream().synchronize()  # the one wait, as TensorRT's runner waits on its stream
            return pin_out.numpy().copy()

    def _pinned(self, which: str, shape, dtype):
        """A page-locked host buffer of ``shape``, kept while the shape repeats (as TensorRT's bound buffers)."""
        import torch

        buf = self._pins.get(which)
        if buf is None or tuple(buf.shape) != tuple(shape):
            buf = self._pins[which] = torch.empty(shape, dtype=dtype, pin_memory=True)
        return buf

    def launcher(self, batch: int, x: np.ndarray):
        """(launch, intervals, method) for GPU compute at ``batch``: the input resident on the device, one forward
        per launch, device time between CUDA events on the current stream, one wait at the end."""
        import torch

        if not self.device.startswith("cuda"):
            raise EdgekitError("GPU compute time needs the torch runner on CUDA")
        with torch.inference_mode():
            t = self._prepare(torch.from_numpy(np.ascontiguousarray(x[:batch])).to(self.device))

        def launch():
            with torch.inference_mode():
                self._forward(t)

        def intervals(fn, n: int) -> list[float]:
            ev = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
            ev[0].record()
            for e in ev[1:]:
                fn()
                e.record()
            ev[-1].synchronize()
            return [float(a.elapsed_time(b)) for a, b in zip(ev, ev[1:])]

        return launch, intervals, "back-to-back launches (PyTorch eager: no CUDA graph)"

    def deactivate_impl(self) -> None:
        import torch

        if self.threads and hasattr(self, "_old_threads"):
            torch.set_num_threads(self._old_threads)
        if hasattr(self, "_old_cudnn_benchmark"):
            torch.backends.cudnn.benchmark = self._old_cudnn_benchmark
        self._module, self._pins = None, {}

    def describe(self) -> dict:
        import torch

        d = {"backend": self.name, "device": self.device, "torch": torch.__version__,
             "precision": "fp16" if self.fp16 else "fp32", "channels_last": self.channels_last,
             "threads": self.threads or torch.get_num_threads(), "host_copies": self.host_copies}
        if self.device.startswith("cuda") and torch.cuda.is_available():
            d["gpu"] = torch.cuda.get_device_name()
        return d


SPEC = BackendSpec(
    "torch", inputs=("torch",), devices=("cpu", "cuda"), precisions=("fp32", "fp16"), suffixes=(".pt", ".pth"),
    requires=("torch",), fix="pip install torch (on a Jetson, NVIDIA's JetPack build of torch)",
    wrong_input="the torch backend runs zoo models, not {model}: pass a model name, or --backend onnxruntime",
    probe=_devices_here)


def open(request: RunnerRequest) -> TorchRunner:
    """Eager PyTorch on ``request.module`` (FP32; FP16 and channels_last are TorchRunner's own arguments)."""
    if request.module is None:
        raise EdgekitError("the torch backend runs a model in memory: open it from a zoo name")
    return TorchRunner(request.module, request.device, threads=request.threads, input_shape=request.input_shape)
