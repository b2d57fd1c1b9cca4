"""The task-family table: one `FAMILIES` line per family (`task.family` in a task YAML), so adding a family is its
module plus one line here.

A `FamilySpec` says what config validation and data loading need to know without importing torch:
  fields          the canonical columns a task of the family must map (`task.<source>.columns`)
  missing_column  the one-line error when one of them is not mapped ({source}, {missing}, {have} filled in)
  labelled        its label is an index into `task.labels` (validation asks for at least two names)
  references      the canonical field that may hold several references per example (a list of columns, or a
                  list-valued column); its first reference is the training target, all are scored (None: no field)
  decodes         its predictions are decoded text scored by `task.scorer`, so a decoded monitor metric is
                  read from the greedy validation slice (`val_slice/<metric>`)
  keys            the task keys only this family reads (the others are shared): `attnbench config` shows them
                  for this family only, and `attnbench config --schema task` lists them under it
  module          the dotted path of the module whose `FAMILY` (tasks/families.py: `Family`) builds its runs:
                  data module, model, TaskModule and test scoring; imported only when a run is built

Trivial baselines (metrics/baselines.py: `BASELINES`) and degeneracy checks (metrics/degeneracy.py: `COLLAPSE`) are
keyed by family name too; a family without an entry there simply gets none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FamilySpec:
    fields: tuple[str, ...]
    missing_column: str
    module: str
    labelled: bool = False
    decodes: bool = False
    references: str | None = None
    keys: tuple[str, ...] = ()


FAMILIES: dict[str, FamilySpec] = {
    "classification": FamilySpec(
        fields=("label",), labelled=True, module="attnbench.tasks.classification", keys=("labels",),
        missing_column="task.{source}.columns has no '{missing}' entry: a classification task needs its label column",
    ),
    "seq2seq": FamilySpec(
        fields=("src", "tgt"), decodes=True, references="tgt", module="attnbench.tasks.seq2seq",
        keys=("max_target_length", "label_smoothing", "scorer", "decoding", "tokenizer.shared"),
        missing_column="task.{source}.columns has no '{missing}' entry (it has {have}): a seq2seq task maps src and "
                       "tgt, e.g. task.{source}.columns={{src: en, tgt: de}}",
    ),
}
