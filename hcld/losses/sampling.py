"""Replicate and downsample so every contrastive anchor has a positive (paper III-D, last paragraph).

The paper: "We replicate and downsample the features X_e and X_s, ensuring that each training
sample has at least one positive sample." What we do, exactly (deterministic, no randomness):

1. replicate: every row whose label occurs once in the batch is repeated once, so its class has
   two rows (the copy is the anchor's positive; gradients flow through both copies);
2. downsample: if that made the batch longer than the original B rows, rows are dropped again
   until it is back to B, taking from the currently largest class (the last of its rows first)
   and never taking a class below 2 rows. The result has max(B, 2·K) rows for K distinct labels.

So the contrastive batch keeps its size (same loss scale and kernel shapes every step), every
label present keeps >= 2 rows, and no class disappears. This is applied to SupCon only: LCL's
anchors are label vectors whose positives are the samples themselves, and ICLD's pairs are
defined by label combinations that duplicating a row cannot create honestly.
"""

from __future__ import annotations

from collections import Counter

import torch


def ensure_positive_index(labels: torch.Tensor) -> torch.Tensor:
    """Row index into the batch (with repeats) after which every label occurs at least twice."""
    values = labels.tolist()
    n = len(values)
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=labels.device)
    counts = Counter(values)
    rows = list(range(n)) + [i for i, v in enumerate(values) if counts[v] == 1]
    target = max(n, 2 * len(counts))
    kept = Counter(values[i] for i in rows)
    drop: set[int] = set()
    # walk rows from the end so the class's last original rows go first (replicas sit at the end
    # but belong to singleton classes, which never exceed 2 rows and so are never dropped)
    while len(rows) - len(drop) > target:
        largest = max(kept, key=lambda v: (kept[v], -v))
        for pos in range(len(rows) - 1, -1, -1):
            if pos not in drop and values[rows[pos]] == largest:
                drop.add(pos)
                kept[largest] -= 1
                break
    index = [r for pos, r in enumerate(rows) if pos not in drop]
    return torch.tensor(index, dtype=torch.long, device=labels.device)
