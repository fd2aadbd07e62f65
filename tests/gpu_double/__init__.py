"""The GPU double: fake TensorRT, cuda-python, pycuda and torch-CUDA modules over one modelled device, so that
every line of edgekit's GPU side runs in CI (see device.py for the rules it keeps and where it differs)."""
