"""Building and running inference engines: the backend protocol, the registry, precision recipes and
one subpackage per backend (``tensorrt``, ``onnxrt``, ``openvino``, ``pytorch``).

Builds from ``models``; knows nothing of timing, verdicts or pytest.
"""
