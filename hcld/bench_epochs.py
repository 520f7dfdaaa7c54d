"""Seconds per training epoch per backbone at the paper's shapes (IV-B: batch 32, 374 frames of 768-d
HuBERT features; 4424 training utterances = 80 % of 5531).

Times the full training step of `hcld.train` (forward, every loss of the variant, backward, Adam)
on random inputs already on the device, so data loading and per-epoch evaluation are NOT included.
With `steps` below the number of steps in an epoch the epoch time is extrapolated from the mean
step time (the result says so). The first `warmup` steps are not timed (allocator, cuDNN autotune).
"""

from __future__ import annotations

import math
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch

from hcld.config import TrialConfig
from hcld.losses.variants import variant_weights
from hcld.train import build_model, describe_device, train_step

PAPER_BATCH, PAPER_FRAMES, PAPER_DIM = 32, 374, 768
PAPER_TRAIN_UTTERANCES = 4424
IEMOCAP_SPEAKERS = 10


def bench_epoch(
    backbone: str,
    *,
    device: str = "cpu",
    steps: int | None = 3,
    warmup: int = 1,
    model_size: str = "paper",
    variant: str = "hcld",
    loss_impl: str = "torch",
    batch: int = PAPER_BATCH,
    frames: int = PAPER_FRAMES,
    dim: int = PAPER_DIM,
    n_train: int = PAPER_TRAIN_UTTERANCES,
    threads: int | None = None,
    seed: int = 0,
) -> dict:
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)
    config = TrialConfig(backbone=backbone, model_size=model_size, variant=variant, loss_impl=loss_impl, batch_size=batch, seed=seed)
    weights = variant_weights(variant)
    model, anchor_source = build_model(config, feat_dim=dim, n_speakers=IEMOCAP_SPEAKERS)
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(n_train / batch)
    timed = steps_per_epoch if steps is None else min(steps, steps_per_epoch)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, dim, generator=g).to(dev)
    emotion = torch.arange(batch).remainder(4).to(dev)
    speaker = torch.randint(0, IEMOCAP_SPEAKERS, (batch,), generator=g).to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        train_step(model, optimizer, x, emotion, speaker, config, weights)
    sync()
    per_step = []
    for _ in range(timed):
        t0 = time.perf_counter()
        train_step(model, optimizer, x, emotion, speaker, config, weights)
        sync()
        per_step.append(time.perf_counter() - t0)
    seconds_per_step = float(np.mean(per_step))
    return {
        "backbone": backbone,
        "device": describe_device(dev),
        "model_size": model_size,
        "variant": variant,
        "loss_impl": loss_impl,
        "batch": batch,
        "frames": frames,
        "dim": dim,
        "train_utterances": n_train,
        "steps_per_epoch": steps_per_epoch,
        "steps_timed": timed,
        "extrapolated": timed < steps_per_epoch,
        "seconds_per_step": seconds_per_step,
        "seconds_per_step_std": float(np.std(per_step)),
        "seconds_per_epoch": seconds_per_step * steps_per_epoch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
        "anchor_source": anchor_source,
        "torch": torch.__version__,
        "host": platform.node(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
