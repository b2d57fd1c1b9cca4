"""attnbench: compare attention mechanisms across NLP tasks under one protocol."""

__version__ = "0.1.0"
