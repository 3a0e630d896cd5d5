"""What 2:4 pruning cost: the pruned PyTorch model's outputs against the dense model's, as ``pruning_*``
metrics for ``quality.sparsity`` (they gate only when the user sets a gate on one)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_trt.quality import metrics


def pruning_loss(
    dense: list[np.ndarray], pruned: list[np.ndarray], task: str, labels: np.ndarray | None = None
) -> dict[str, Any]:
    """What pruning cost on the evaluation samples: the pruned model's first output against the dense one."""
    d, p = dense[0], pruned[0]
    out: dict[str, Any] = {
        "pruning_rel_error": metrics.rel_l2(p, d, d),
        "pruning_closeness": metrics.closeness(d, p).get("0.1"),
        "pruning_cosine_min": metrics.embedding(d, p)["cosine_min"],
    }
    if task == "classification" and d.ndim == 2:
        cls = metrics.classification(d, p, labels)
        out["pruning_top1_agreement"] = cls["top1_agreement"]
        if labels is not None:
            acc_d, acc_p = cls["baseline_accuracy_top1"], cls["accuracy_top1"]
            out.update(
                dense_accuracy_top1=acc_d, pruned_accuracy_top1=acc_p, pruning_accuracy_drop=acc_d - acc_p
            )
    elif task == "segmentation" and d.ndim == 4:
        out["pruning_pixel_agreement"] = metrics.segmentation(d, p)["pixel_agreement"] / 100.0  # a share
    return out
