"""The TensorRT and TensorRT-RTX backends: version shims, the builder, the runtime."""
