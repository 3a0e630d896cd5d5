"""pytest-trt: TensorRT / ONNX Runtime / PyTorch inference benchmarks as ordinary pytest tests."""

__version__ = "0.1.0"
