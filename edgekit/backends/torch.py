"""PyTorch eager: the reference a user would otherwise run (CPU, or CUDA in FP32/FP16, channels_last)."""

from __future__ import annotations

import numpy as np

from ..errors import EdgekitError
from .base import BackendSpec, Runner, RunnerRequest


def _devices_here() -> tuple[str, ...]:
    import torch

    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, model, device: str = "cpu", fp16: bool = False, channels_last: bool = False,
                 threads: int | None = None, input_shape=None) -> None:
        super().__init__()
        self.model, self.device, self.fp16 = model, device, fp16
        self.channels_last, self.threads = channels_last, threads
        self.input_shape = list(input_shape) if input_shape else [None, 3, None, None]
        self.input_shape[0] = None

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
        self._module = m

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device, non_blocking=True)
            if self.fp16:
                t = t.half()
            if self.channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            out = self._module(t)
            if isinstance(out, (tuple, list)):
                out = out[0]
            return out.float().cpu().numpy()  # .cpu() waits for the device, so timings are complete

    def deactivate_impl(self) -> None:
        import torch

        if self.threads and hasattr(self, "_old_threads"):
            torch.set_num_threads(self._old_threads)
        if hasattr(self, "_old_cudnn_benchmark"):
            torch.backends.cudnn.benchmark = self._old_cudnn_benchmark
        self._module = None

    def describe(self) -> dict:
        import torch

        d = {"backend": self.name, "device": self.device, "torch": torch.__version__,
             "precision": "fp16" if self.fp16 else "fp32", "channels_last": self.channels_last,
             "threads": self.threads or torch.get_num_threads()}
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
