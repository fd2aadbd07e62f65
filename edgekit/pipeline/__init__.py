"""The jobs, stage by stage: export, INT8, FP16, TensorRT, optimize, profile, prune, Jetson bundle."""
