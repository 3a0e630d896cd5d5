"""The machine under the benchmark: GPU presence, NVML telemetry, Jetson power modes, clock locks, CUDA start-up.

Imports nothing from the rest of the package but ``cache``: every other layer may ask it about the machine.
"""
