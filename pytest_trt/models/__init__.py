"""What is benchmarked: the model registry and its catalogue, networks, weights, input signatures,
evaluation data, the ONNX export and users' own models and data.

Imports only ``cache`` and ``hardware``.
"""
