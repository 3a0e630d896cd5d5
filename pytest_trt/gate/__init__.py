"""The regression gate over stored runs: reading result files, the latency rule, compare, history,
noise simulation.  Light: never imports torch, so ``pytest-trt compare`` starts at once.
"""
