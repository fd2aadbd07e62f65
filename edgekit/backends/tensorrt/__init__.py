"""TensorRT: build options, the build, the runner, CUDA memory. TensorRT itself is imported lazily."""
