"""LightningModules per task family, and their metrics."""

from attnbench.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
