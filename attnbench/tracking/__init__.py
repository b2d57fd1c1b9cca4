"""W&B setup, the attention-map callback and run records."""
