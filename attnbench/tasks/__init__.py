"""LightningModules per task family, and their metrics."""

from attnbench.tasks.classification import ClassificationTask
from attnbench.tasks.seq2seq import Seq2SeqTask

__all__ = ["ClassificationTask", "Seq2SeqTask"]
