"""Mobile and small-board formats: one converter per format, from the verified torch model or ONNX file."""
