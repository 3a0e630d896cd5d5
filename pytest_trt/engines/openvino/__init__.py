"""The Intel OpenVINO backend (CPU): precision hints, the shared Q/DQ graph for int8, async throughput."""
