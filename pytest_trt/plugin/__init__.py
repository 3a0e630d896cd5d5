"""The pytest plugin: options and settings, the matrix, per-process session state, the ``trt_run`` fixture,
result records, the terminal summary and the suite that ``--trt-onnx`` runs.  The hooks are in ``hooks``.
"""
