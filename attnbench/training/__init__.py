"""Training one configuration: the run pipeline, its Trainer and callbacks, checkpoints, signals, verify."""
