"""The ONNX Runtime backend (CPU): a session per engine, graph optimisation levels, Q/DQ int8."""
