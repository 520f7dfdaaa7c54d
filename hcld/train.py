"""One training trial: `run_trial(config, data) -> TrialResult`, plain PyTorch (no Ray, no Polars).

Paper IV-B defaults (all from TrialConfig): Adam, lr 5e-4, batch 32, 100 epochs, linear warm-up of
the learning rate over the first 5 epochs (per step, from lr/steps to lr), then constant.
After every epoch the test fold is evaluated (curves); the reported epoch is the final one (no
selection rule, so the test fold never chooses anything). After training, linear probes on frozen
embeddings measure decoupling (hcld.metrics). Seeded: bit-for-bit repeatable on CPU (same torch,
same thread count); on CUDA, cuDNN and atomic reductions may differ in the last bits.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import kernels
from hcld import metrics as M
from hcld.anchors import load_label_anchors
from hcld.config import TrialConfig, TrialData, TrialResult
from hcld.errors import TrialFailed
from hcld.labels import EMOTIONS
from hcld.losses import kernel_supports
from hcld.losses.variants import TERM_NAMES, LossWeights, loss_terms, term_values, uses_speaker_branch, variant_weights, weighted_total
from hcld.models import HCLDModel


def run_trial(
    config: TrialConfig,
    data: TrialData,
    *,
    on_epoch: Callable[[dict], None] | None = None,
    artifacts_dir: Path | None = None,
) -> TrialResult:
    threads = torch.get_num_threads()
    try:
        return _run_trial(config, data, on_epoch=on_epoch, artifacts_dir=artifacts_dir)
    finally:
        torch.set_num_threads(threads)  # config.threads must not leak into the caller's process


def _run_trial(config: TrialConfig, data: TrialData, *, on_epoch, artifacts_dir) -> TrialResult:
    started = time.perf_counter()
    name = _trial_name(config, data)
    _check_inputs(config, data, name)
    device = resolve_device(config.device)
    seed_everything(config.seed, config.threads)
    weights = variant_weights(config.variant)

    train_idx = np.asarray(data.train_idx, dtype=np.int64)
    test_idx = np.asarray(data.test_idx, dtype=np.int64)
    # speaker classes = the speakers of the training data, in id order
    train_speakers = np.unique(data.speaker[train_idx])
    spk_class = {int(s): c for c, s in enumerate(train_speakers)}
    speakers_seen = set(np.unique(data.speaker[test_idx]).tolist()) <= set(spk_class)

    model, anchor_source = build_model(config, feat_dim=data.features.shape[2], n_speakers=len(train_speakers))
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    scheduler = warmup_schedule(optimizer, config.warmup_epochs * steps_per_epoch)
    order_rng = torch.Generator().manual_seed(config.seed)
    train_spk = torch.as_tensor(np.array([spk_class[int(s)] for s in data.speaker[train_idx]]), dtype=torch.long)

    curves: list[dict] = []
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_idx), generator=order_rng)
        sums = dict.fromkeys(("loss_total", *TERM_NAMES), 0.0)
        for batch_no, start in enumerate(range(0, len(order), config.batch_size), start=1):
            pos = order[start : start + config.batch_size].sort().values.numpy()  # sorted: memmap reads in order
            x = _batch_features(data.features, train_idx[pos], device)
            emotion = torch.as_tensor(data.emotion[train_idx[pos]], dtype=torch.long, device=device)
            speaker = train_spk[pos].to(device)
            values = train_step(model, optimizer, x, emotion, speaker, config, weights, where=(name, epoch, batch_no))
            scheduler.step()
            for k, v in values.items():
                sums[k] += v * len(pos) if not math.isnan(v) else math.nan
        losses = {k: v / len(train_idx) for k, v in sums.items()}
        evaluation = evaluate(model, data, test_idx, spk_class, config.batch_size, device)
        row = {"epoch": epoch, **losses, **_scores(evaluation, data, speakers_seen)}
        row["seconds"] = time.perf_counter() - t0
        curves.append(row)
        if on_epoch is not None:
            on_epoch(dict(row))

    final, test_eval = curves[-1], evaluation  # the reported (final) epoch's test evaluation
    train_eval = evaluate(model, data, train_idx, spk_class, config.batch_size, device)
    probes = decoupling_probes(train_eval, test_eval, data, train_idx, test_idx, speakers_seen, config.seed)
    result = TrialResult(
        metrics={k: final[k] for k in ("emo_wa", "emo_ua", "spk_wa", "spk_ua")} | probes,
        curves=curves,
        confusion_emotion=M.confusion_matrix(data.emotion[test_idx], test_eval["emo_pred"], len(EMOTIONS)),
        confusion_speaker=_speaker_confusion(test_eval, data, test_idx, speakers_seen),
        reported_epoch=config.epochs,
        seconds=time.perf_counter() - started,
        device=describe_device(device),
        anchor_source=anchor_source,
        loss_impl=resolved_impl(config.loss_impl, device),
    )
    if artifacts_dir is not None:
        write_artifacts(Path(artifacts_dir), result, test_eval, data, test_idx)
    return result


def build_model(config: TrialConfig, *, feat_dim: int, n_speakers: int) -> tuple[HCLDModel, str]:
    """The model for a config, and where its label anchors came from ("unused" without LCL)."""
    weights = variant_weights(config.variant)
    anchors, source = None, "unused"
    if weights.needs_anchors:
        loaded = load_label_anchors(config.anchor_source, config.roberta_path)
        anchors, source = loaded.vectors, loaded.source
    model = HCLDModel(
        feat_dim=feat_dim,
        n_speakers=n_speakers,
        n_emotions=len(EMOTIONS),
        backbone=config.backbone,
        speaker_backbone=config.speaker_backbone,
        model_size=config.model_size,
        embed_dim=config.embed_dim,
        speaker_branch=uses_speaker_branch(config),
        label_anchors=anchors,
    )
    return model, source


def train_step(
    model: HCLDModel,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    emotion: torch.Tensor,
    speaker: torch.Tensor,
    config: TrialConfig,
    weights: LossWeights,
    *,
    where: tuple = ("trial", 0, 0),
) -> dict[str, float]:
    """One optimisation step; returns loss_total and every term (NaN = not in the variant).
    A non-finite term raises TrialFailed naming the trial, epoch, batch and term."""
    out = model(x)
    terms = loss_terms(out, emotion, speaker, config, weights)
    values = term_values(terms)
    bad = [k for k in terms if not math.isfinite(values[k])]
    if bad:
        trial, epoch, batch = where
        raise TrialFailed(f"{trial}: non-finite loss ({', '.join(f'{k}={values[k]}' for k in bad)}) at epoch {epoch}, batch {batch}")
    total = weighted_total(terms, weights)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {"loss_total": float(total.detach()), **values}


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from lr/warmup_steps to lr over `warmup_steps` steps, then constant."""
    if warmup_steps <= 0:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))


@torch.no_grad()
def evaluate(model: HCLDModel, data: TrialData, idx: np.ndarray, spk_class: dict, batch_size: int, device) -> dict:
    """Embeddings and predictions (speaker predictions as original speaker ids) for rows `idx`."""
    model.eval()
    class_to_spk = np.array(sorted(spk_class, key=spk_class.get), dtype=np.int64)
    xe, xs, emo_pred, spk_pred = [], [], [], []
    for start in range(0, len(idx), batch_size):
        out = model(_batch_features(data.features, idx[start : start + batch_size], device))
        xe.append(out["xe"].float().cpu())
        emo_pred.append(out["emo_logits"].argmax(1).cpu())
        if "xs" in out:
            xs.append(out["xs"].float().cpu())
            spk_pred.append(out["spk_logits"].argmax(1).cpu())
    has_spk = bool(xs)
    return {
        "xe": torch.cat(xe).numpy(),
        "xs": torch.cat(xs).numpy() if has_spk else np.zeros((len(idx), 0), np.float32),
        "emo_pred": torch.cat(emo_pred).numpy(),
        "spk_pred": class_to_spk[torch.cat(spk_pred).numpy()] if has_spk else None,
    }


def decoupling_probes(train_eval, test_eval, data, train_idx, test_idx, speakers_seen: bool, seed: int) -> dict:
    """probe_spk_from_xe: speaker probe on frozen X_e; probe_emo_from_xs: emotion probe on X_s (UA)."""
    spk = M.speaker_probe(
        train_eval["xe"], data.speaker[train_idx], test_eval["xe"], data.speaker[test_idx], seen=speakers_seen, seed=seed
    )
    emo = math.nan
    if train_eval["xs"].shape[1]:
        emo = M.linear_probe(train_eval["xs"], data.emotion[train_idx], test_eval["xs"], data.emotion[test_idx])
    return {"probe_spk_from_xe": spk, "probe_emo_from_xs": emo}


def write_artifacts(folder: Path, result: TrialResult, test_eval: dict, data: TrialData, test_idx: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(dataclasses.asdict(result), indent=1))
    tmp.replace(folder / "result.json")
    np.savez_compressed(
        folder / "embeddings.npz",
        xe=test_eval["xe"].astype(np.float16),
        xs=test_eval["xs"].astype(np.float16),
        emotion=np.asarray(data.emotion[test_idx], dtype=np.int64),
        speaker=np.asarray(data.speaker[test_idx], dtype=np.int64),
        rows=test_idx.astype(np.int64),
    )


def resolved_impl(requested: str, device: torch.device) -> str:
    """What the pairwise losses actually ran on: kernels.resolve_impl when the kernels have it
    ("triton" on CUDA, "triton-interpreter" on CPU with TRITON_INTERPRET=1, else "torch")."""
    resolve = getattr(kernels, "resolve_impl", None)
    return resolve(requested, device) if resolve is not None else requested


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrialFailed(f"device {name!r} requested but CUDA is not available here")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


def seed_everything(seed: int, threads: int | None = None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)


def _batch_features(features: np.ndarray, rows: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(features[rows], dtype=np.float32)).to(device, non_blocking=True)


def _scores(evaluation: dict, data: TrialData, speakers_seen: bool) -> dict[str, float]:
    """Test-fold WA/UA; speaker scores NaN without a speaker branch or when test speakers are unseen."""
    emo_true = data.emotion[data.test_idx]
    scores = {
        "emo_wa": M.weighted_accuracy(emo_true, evaluation["emo_pred"]),
        "emo_ua": M.unweighted_accuracy(emo_true, evaluation["emo_pred"]),
        "spk_wa": math.nan,
        "spk_ua": math.nan,
    }
    if evaluation["spk_pred"] is not None and speakers_seen:
        spk_true = data.speaker[data.test_idx]
        scores["spk_wa"] = M.weighted_accuracy(spk_true, evaluation["spk_pred"])
        scores["spk_ua"] = M.unweighted_accuracy(spk_true, evaluation["spk_pred"])
    return scores


def _speaker_confusion(test_eval: dict, data: TrialData, test_idx: np.ndarray, speakers_seen: bool) -> list[list[int]]:
    """Order TrialData.speaker_names; empty when undefined (no speaker branch, or unseen speakers)."""
    if test_eval["spk_pred"] is None or not speakers_seen:
        return []
    n = max(len(data.speaker_names), int(data.speaker.max()) + 1)
    return M.confusion_matrix(data.speaker[test_idx], test_eval["spk_pred"], n)


def _trial_name(config: TrialConfig, data: TrialData) -> str:
    branches = config.backbone if not config.speaker_backbone else f"{config.backbone}/{config.speaker_backbone}"
    return f"trial {config.variant} {branches} seed {config.seed}" + (f" on {data.description}" if data.description else "")


def _check_inputs(config: TrialConfig, data: TrialData, name: str) -> None:
    if config.epochs < 1 or config.batch_size < 1:
        raise TrialFailed(f"{name}: epochs and batch_size must be >= 1 (got {config.epochs}, {config.batch_size})")
    if data.features.ndim != 3:
        raise TrialFailed(f"{name}: features must be [N, T, D], got shape {data.features.shape}")
    if len(data.train_idx) < 2 or len(data.test_idx) == 0:
        raise TrialFailed(f"{name}: empty fold ({len(data.train_idx)} train, {len(data.test_idx)} test rows)")
    emo = np.asarray(data.emotion)
    if emo.min() < 0 or emo.max() >= len(EMOTIONS):
        raise TrialFailed(f"{name}: emotion labels must be in 0..{len(EMOTIONS) - 1}, got {emo.min()}..{emo.max()}")
    for fn in (kernels.icld, kernels.supcon, kernels.label_contrastive):
        if not kernel_supports(fn, config.loss_impl):
            raise TrialFailed(f"{name}: loss_impl={config.loss_impl!r} is not available (kernels.{fn.__name__} has no impl option)")
