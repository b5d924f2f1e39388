"""The training stage: the model, its schedule and precision, the training loop, the fused ops."""
