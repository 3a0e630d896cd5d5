"""The PyTorch backends: eager, CUDA graphs and torch.compile, the baseline every engine is judged against."""
