"""Data sets Labelwise ships for demos, tests and benchmarks (generated, never downloaded)."""

from labelwise.datasets.digits import (
    CLASS_NAMES,
    DigitsConfig,
    DigitsDataset,
    class_probabilities,
    domain_sample_indices,
    generate_digits,
    load_dataset,
    read_yolo_labels,
    resolve_rare_classes,
)

__all__ = [
    "CLASS_NAMES",
    "DigitsConfig",
    "DigitsDataset",
    "class_probabilities",
    "domain_sample_indices",
    "generate_digits",
    "load_dataset",
    "read_yolo_labels",
    "resolve_rare_classes",
]
