"""Metrics from the established libraries, with the signature of how each was computed.

Classification: torchmetrics accuracy (micro) and macro-F1, accumulated on the device.
"""

from __future__ import annotations

import torchmetrics
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


def classification_metrics(num_labels: int) -> MetricCollection:
    return MetricCollection(
        {
            "accuracy": MulticlassAccuracy(num_classes=num_labels, average="micro"),
            "f1": MulticlassF1Score(num_classes=num_labels, average="macro"),
        }
    )


def classification_signatures(num_labels: int) -> dict[str, str]:
    version = torchmetrics.__version__
    return {
        "accuracy": f"torchmetrics {version} MulticlassAccuracy(num_classes={num_labels}, average=micro)",
        "f1": f"torchmetrics {version} MulticlassF1Score(num_classes={num_labels}, average=macro)",
    }
