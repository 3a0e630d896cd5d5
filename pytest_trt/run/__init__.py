"""Several processes for one run: sharding the matrix, the one-pytest-per-GPU launcher, the wall-clock timeline."""
