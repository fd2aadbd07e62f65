"""INT8 and FP16: configuration, exclusions, onnxruntime's quantizer, the accuracy guard, the per-layer report."""
