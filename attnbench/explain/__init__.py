"""Faithfulness diagnostics of attention (`attnbench explain`): is a variant's attention an explanation?

classification.py computes them for a trained classifier over a test set; runner.py reads a run folder and writes
explain.json, explain.npz and the plots beside its record."""
