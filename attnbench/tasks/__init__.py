"""LightningModules per task family, on the contract of tasks/base.py (TaskModule), and their metrics."""

from attnbench.tasks.base import TaskModule
from attnbench.tasks.classification import ClassificationTask
from attnbench.tasks.seq2seq import Seq2SeqTask

__all__ = ["ClassificationTask", "Seq2SeqTask", "TaskModule"]
