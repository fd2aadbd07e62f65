"""ONNX graphs: facts read from a graph, and the torch-to-ONNX export."""
