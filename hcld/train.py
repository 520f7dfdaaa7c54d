"""One training trial: `run_trial(config, data) -> TrialResult`, plain PyTorch (no Ray, no Polars).

Paper IV-B defaults (all from TrialConfig): Adam, lr 5e-4, batch 32, 100 epochs, linear warm-up of
the learning rate over the first 5 epochs (per step, from lr/steps to lr), then constant.
The reported epoch (TrialConfig.selection):
- final (default): the last one. The model trains on the whole outer training set and the test
  fold is evaluated after every epoch (curves); it chooses nothing.
- best_val: a validation part is held out of the outer training set (hcld.data.validation, share
  `validation_share`), the model trains on the rest, and the validation part is evaluated after
  every epoch (curves: val_emo_wa, val_emo_ua). The epoch of highest validation emotion UA (ties:
  the earliest) is kept as a copy of its state on the CPU; after the last epoch that state is
  restored and the test fold evaluated once. No feature of a test row is read before then (the
  split reads the fold's row numbers and speaker ids only, to mirror its design).
- best_val with evaluate_test=False (a tune's search trial): as best_val, but the test fold is
  never evaluated: the result holds the chosen epoch's validation scores, NaN test metrics, no
  probes, confusions or predictions.
After training, linear probes on frozen embeddings measure decoupling (hcld.metrics): fit on the
rows trained on, scored on the test fold, with the reported epoch's model. The result carries the
part sizes and the test fold's per-utterance predictions (predictions.npz in the artifacts).
Seeded: bit-for-bit repeatable on CPU (same torch, same thread count); on CUDA, cuDNN and atomic
reductions may differ in the last bits.

GPU path: features come from `hcld.placement` (resident on the device when they fit, the same fp32
batches either way); the epoch's batch rows and all labels go to the device once, and the loss
values of every step stay there until the epoch ends (one read-back per epoch, no per-step host
sync from this loop), where a non-finite value fails the trial naming its first batch and term.
`precision="bf16"` autocasts the model's forward; the losses run in fp32 on its outputs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hcld import kernels
from hcld import metrics as M
from hcld.anchors import load_label_anchors
from hcld.config import TrialConfig, TrialData, TrialResult
from hcld.data.validation import validation_split
from hcld.errors import DataError, TrialFailed
from hcld.fileio import atomic_path, write_json_atomic
from hcld.labels import EMOTIONS
from hcld.losses.variants import (
    TERM_NAMES,
    LossWeights,
    loss_terms,
    loss_weights,
    uses_speaker_branch,
    variant_weights,
    weighted_total,
)
from hcld.models import HCLDModel
from hcld.placement import FeatureSource, Rows, feature_source
from hcld.saved_model import MODEL_DIR, write_model
from hcld.threads import torch_threads

PREDICTIONS_FILE = "predictions.npz"  # per-utterance test predictions of the reported epoch (write_artifacts)


def run_trial(
    config: TrialConfig,
    data: TrialData,
    *,
    on_epoch: Callable[[dict], None] | None = None,
    artifacts_dir: Path | None = None,
    save_model: bool = False,
) -> TrialResult:
    """Train and evaluate one trial. `save_model`: keep the reported model in
    artifacts_dir/model/ (hcld.saved_model; a search trial, which never sees the test fold, keeps none)."""
    with torch_threads(config.threads):
        return _run_trial(config, data, on_epoch=on_epoch, artifacts_dir=artifacts_dir, save_model=save_model)


def _run_trial(config: TrialConfig, data: TrialData, *, on_epoch, artifacts_dir, save_model) -> TrialResult:
    started = time.perf_counter()
    name = _trial_name(config, data)
    _check_inputs(config, data, name)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    weights = loss_weights(config)

    train_idx = np.asarray(data.train_idx, dtype=np.int64)
    test_idx = np.asarray(data.test_idx, dtype=np.int64)
    select = config.selection == "best_val"
    val_idx = np.zeros(0, dtype=np.int64)
    if select:  # the model trains on the fit part only; the validation part chooses the epoch
        try:
            train_idx, val_idx = validation_split(data.emotion, data.speaker, train_idx, test_idx,
                                                  config.validation_share, config.seed)
        except DataError as exc:
            raise TrialFailed(f"{name}: {exc}") from exc
    # speaker classes = the speakers of the rows trained on, in id order
    train_speakers = np.unique(data.speaker[train_idx])
    spk_class = {int(s): c for c, s in enumerate(train_speakers)}
    speakers_seen = set(np.unique(data.speaker[test_idx]).tolist()) <= set(spk_class)

    model, anchor_source = build_model(config, feat_dim=data.features.shape[2], n_speakers=len(train_speakers),
                                       labels=tuple(data.emotion_names), n_layers=stacked_layers(data.extractor))
    model.to(device)
    optimizer = make_optimizer(model, config, device)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    scheduler = warmup_schedule(optimizer, config.warmup_epochs * steps_per_epoch)
    order_rng = torch.Generator().manual_seed(config.seed)
    source = feature_source(data.features, device, config.feature_placement, key=data.feature_key)
    labels = DeviceLabels.of(data, spk_class, device)
    present = ("loss_total", *(name for name, weight in weights.by_term().items() if weight))
    class_to_spk = np.array(sorted(spk_class, key=spk_class.get), dtype=np.int64)

    curves: list[dict] = []
    best: tuple[int, float, dict] | None = None  # best_val: (epoch, val UA, model state on the CPU)
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_idx), generator=order_rng)
        rows, bounds = epoch_batches(order, train_idx, config.batch_size, device)
        log = torch.empty((len(bounds), len(present)), dtype=torch.float32, device=device)
        for batch_no, (start, stop) in enumerate(bounds):
            batch = rows[start:stop]
            values = train_step(model, optimizer, source.batch(batch), labels.emotion[batch.device],
                                labels.speaker_class[batch.device], config, weights)
            log[batch_no] = torch.stack([values[k] for k in present])  # stays on the device
            scheduler.step()
        losses = epoch_losses(log.cpu().numpy(), [stop - start for start, stop in bounds], present, where=(name, epoch))
        if select:  # the validation part only: the test fold is not touched before the epoch is chosen
            val_eval = evaluate(model, source, val_idx, class_to_spk, config.batch_size, config.precision)
            scores = _validation_scores(val_eval, data, val_idx)
            if best is None or scores["val_emo_ua"] > best[1]:  # strictly better: ties keep the earliest
                # a search trial never restores it: no copy
                best = (epoch, scores["val_emo_ua"], _state_copy(model) if config.evaluate_test else None)
        else:
            evaluation = evaluate(model, source, test_idx, class_to_spk, config.batch_size, config.precision)
            scores = _scores(evaluation, data, speakers_seen)
        row = {"epoch": epoch, **losses, **scores}
        row["seconds"] = time.perf_counter() - t0
        curves.append(row)
        if on_epoch is not None:
            on_epoch(dict(row))

    if not config.evaluate_test:  # a search trial: the chosen epoch's validation scores, nothing of the test fold
        reported_epoch = best[0]
        metrics = {m: math.nan for m in M.METRICS}
        metrics |= {k: curves[reported_epoch - 1][k] for k in M.VALIDATION_METRICS}
        result = TrialResult(metrics=metrics, curves=curves, confusion_emotion=[], confusion_speaker=[],
                             reported_epoch=reported_epoch, seconds=time.perf_counter() - started,
                             device=describe_device(device), anchor_source=anchor_source,
                             loss_impl=kernels.resolve_impl(config.loss_impl, device),
                             sizes={"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx)},
                             validation_utt_ids=_utt_ids(data, val_idx), emotion_names=list(data.emotion_names))
        if artifacts_dir is not None:
            Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
            write_json_atomic(Path(artifacts_dir) / "result.json", dataclasses.asdict(result), indent=1)
        return result
    if select:  # the chosen epoch's model, then the test fold, once
        reported_epoch, _, state = best
        model.load_state_dict(state)
        del state, best
        test_eval = evaluate(model, source, test_idx, class_to_spk, config.batch_size, config.precision)
        reported = {**_scores(test_eval, data, speakers_seen),
                    **{k: curves[reported_epoch - 1][k] for k in M.VALIDATION_METRICS}}
    else:  # the final epoch's test evaluation
        reported_epoch, test_eval = config.epochs, evaluation
        reported = {**curves[-1], **{k: math.nan for k in M.VALIDATION_METRICS}}
    train_eval = evaluate(model, source, train_idx, class_to_spk, config.batch_size, config.precision)
    probes = decoupling_probes(train_eval, test_eval, data, train_idx, test_idx, speakers_seen, config.seed)
    result = TrialResult(
        metrics={k: reported[k] for k in (*M.ACCURACIES, M.EMOTION_F1)} | probes
        | {k: reported[k] for k in M.VALIDATION_METRICS},
        curves=curves,
        confusion_emotion=M.confusion_matrix(data.emotion[test_idx], test_eval["emo_pred"], len(data.emotion_names)),
        confusion_speaker=_speaker_confusion(test_eval, data, test_idx, speakers_seen),
        reported_epoch=reported_epoch,
        seconds=time.perf_counter() - started,
        device=describe_device(device),
        anchor_source=anchor_source,
        loss_impl=kernels.resolve_impl(config.loss_impl, device),
        sizes={"train": len(train_idx), "validation": len(val_idx), "test": len(test_idx)},
        predictions=predictions_of(test_eval, data, test_idx),
        validation_utt_ids=_utt_ids(data, val_idx),
        emotion_names=list(data.emotion_names),
    )
    if artifacts_dir is not None:
        write_artifacts(Path(artifacts_dir), result, test_eval, data, test_idx)
        if save_model:
            write_model(Path(artifacts_dir) / MODEL_DIR, model, emotion_names=data.emotion_names,
                        speaker_ids=class_to_spk, extractor=data.extractor, config=config,
                        reported_epoch=reported_epoch)
    return result


def _state_copy(model: HCLDModel) -> dict[str, torch.Tensor]:
    """A copy of the model's parameters and buffers on the CPU (the device keeps training)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def predictions_of(test_eval: dict, data: TrialData, test_idx: np.ndarray) -> dict:
    """TrialResult.predictions: the test rows' utterance ids, true and predicted emotion, and the
    emotion head's softmax probabilities."""
    return {
        "utt_id": _utt_ids(data, test_idx),
        "true": np.asarray(data.emotion[test_idx], dtype=np.int64),
        "pred": np.asarray(test_eval["emo_pred"], dtype=np.int64),
        "prob": np.asarray(test_eval["emo_prob"], dtype=np.float32),
    }


def _utt_ids(data: TrialData, idx: np.ndarray) -> list[str]:
    """Utterance ids of rows `idx` (empty strings when the data carries none)."""
    if len(data.utt_ids) == 0:
        return [""] * len(idx)
    return [str(data.utt_ids[i]) for i in idx]


def stacked_layers(extractor: dict) -> int:
    """How many upstream layers the features stack (TrialData.extractor; 1 for one layer or fbank)."""
    return len(extractor.get("layers") or ()) or 1


def build_model(config: TrialConfig, *, feat_dim: int, n_speakers: int,
                labels: tuple[str, ...] = EMOTIONS, n_layers: int = 1) -> tuple[HCLDModel, str]:
    """The model for a config and a label set (the classes, in index order), and where its label
    anchors came from ("unused" without LCL). `n_layers` > 1: the features stack that many
    upstream layers, mixed by a learned LayerMix in front."""
    weights = variant_weights(config.variant)
    anchors, source = None, "unused"
    if weights.needs_anchors:
        loaded = load_label_anchors(config.anchor_source, config.roberta_path, labels=labels)
        anchors, source = loaded.vectors, loaded.source
    model = HCLDModel(
        feat_dim=feat_dim,
        n_speakers=n_speakers,
        n_emotions=len(labels),
        backbone=config.backbone,
        trunk=config.trunk,
        speaker_backbone=config.speaker_backbone,
        model_size=config.model_size,
        embed_dim=config.embed_dim,
        speaker_branch=uses_speaker_branch(config),
        label_anchors=anchors,
        anchor_projection=config.anchor_projection,
        n_layers=n_layers,
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
) -> dict[str, torch.Tensor]:
    """One optimisation step; returns loss_total and the variant's terms as detached tensors on
    the device: nothing is read back here (no host sync), the caller checks them once per epoch."""
    with autocast(config.precision, x.device):
        out = model(x)
    terms = loss_terms(out, emotion, speaker, config, weights)  # outside autocast: losses in fp32
    total = weighted_total(terms, weights)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {"loss_total": total.detach().float(), **{k: v.detach().float() for k, v in terms.items()}}


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """bf16: autocast of the model's forward (matmuls and convolutions in bf16, norms in fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def make_optimizer(model: HCLDModel, config: TrialConfig, device: torch.device) -> torch.optim.Adam:
    """Adam; on CUDA the fused kernel (one launch per step instead of one per parameter group)."""
    fused = True if device.type == "cuda" else None  # CPU keeps the default: bit-identical curves
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)


@dataclass(frozen=True)
class DeviceLabels:
    """Labels of every feature row, on the device: a batch looks them up with its device rows."""

    emotion: torch.Tensor  # [N] emotion index
    speaker_class: torch.Tensor  # [N] training-speaker class (-1: a speaker not in training)

    @classmethod
    def of(cls, data: TrialData, spk_class: dict, device: torch.device) -> DeviceLabels:
        classes = np.array([spk_class.get(int(s), -1) for s in data.speaker], dtype=np.int64)
        return cls(torch.as_tensor(np.asarray(data.emotion), dtype=torch.long).to(device),
                   torch.from_numpy(classes).to(device))


def epoch_batches(order: torch.Tensor, train_idx: np.ndarray, batch_size: int, device) -> tuple[Rows, list]:
    """The epoch's feature rows in batch order (each batch sorted: memmap reads in order), copied
    to the device once, and the (start, stop) of every batch in them."""
    order = order.numpy()  # a host permutation (CPU generator): same order on every device
    bounds = [(start, min(start + batch_size, len(order))) for start in range(0, len(order), batch_size)]
    pos = np.concatenate([np.sort(order[start:stop]) for start, stop in bounds])
    return Rows.of(train_idx[pos], device), bounds


def epoch_losses(log: np.ndarray, sizes: list[int], names: tuple[str, ...], *, where: tuple) -> dict[str, float]:
    """Per-sample means over the epoch of loss_total and every term (NaN: not in the variant) from
    the per-batch values [batches, names]. A non-finite value fails the trial, naming the first
    bad batch and its terms."""
    finite = np.isfinite(log)
    if not finite.all():
        batch = int(np.flatnonzero(~finite.all(axis=1))[0])
        bad = [(k, float(v)) for k, v, ok in zip(names, log[batch], finite[batch]) if not ok]
        named = [(k, v) for k, v in bad if k != "loss_total"] or bad  # the terms, unless only the sum overflowed
        trial, epoch = where
        listed = ", ".join(f"{k}={v}" for k, v in named)
        raise TrialFailed(f"{trial}: non-finite loss ({listed}) at epoch {epoch}, batch {batch + 1}")
    sums = np.zeros(len(names))
    for values, size in zip(log, sizes):  # in batch order, in float64: the same sums as before
        sums += values.astype(np.float64) * size
    means = dict(zip(names, (sums / sum(sizes)).tolist()))
    return {k: means.get(k, math.nan) for k in ("loss_total", *TERM_NAMES)}


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from lr/warmup_steps to lr over `warmup_steps` steps, then constant."""
    if warmup_steps <= 0:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))


@torch.no_grad()
def evaluate(model: HCLDModel, source: FeatureSource, idx: np.ndarray, class_to_spk: np.ndarray, batch_size: int,
             precision: str = "fp32") -> dict:
    """Embeddings, emotion predictions and softmax probabilities, speaker predictions (as original
    speaker ids) for rows `idx`; outputs stay on the device until the end (one read-back per
    output, not one per batch)."""
    model.eval()
    rows = Rows.of(idx, source.device)
    parts: dict[str, list[torch.Tensor]] = {"xe": [], "emo_pred": [], "emo_prob": [], "xs": [], "spk_pred": []}
    for start in range(0, len(idx), batch_size):
        with autocast(precision, source.device):
            out = model(source.batch(rows[start : start + batch_size]))
        parts["xe"].append(out["xe"].float())
        parts["emo_pred"].append(out["emo_logits"].argmax(1))
        parts["emo_prob"].append(out["emo_logits"].float().softmax(1))
        if "xs" in out:
            parts["xs"].append(out["xs"].float())
            parts["spk_pred"].append(out["spk_logits"].argmax(1))
    has_spk = bool(parts["xs"])
    return {
        "xe": torch.cat(parts["xe"]).cpu().numpy(),
        "xs": torch.cat(parts["xs"]).cpu().numpy() if has_spk else np.zeros((len(idx), 0), np.float32),
        "emo_pred": torch.cat(parts["emo_pred"]).cpu().numpy(),
        "emo_prob": torch.cat(parts["emo_prob"]).cpu().numpy(),
        "spk_pred": class_to_spk[torch.cat(parts["spk_pred"]).cpu().numpy()] if has_spk else None,
    }


def decoupling_probes(train_eval, test_eval, data, train_idx, test_idx, speakers_seen: bool, seed: int) -> dict:
    """probe_spk_from_xe: speaker probe on frozen X_e; probe_emo_from_xs: emotion probe on X_s (UA)."""
    spk = M.speaker_probe(
        train_eval["xe"], data.speaker[train_idx], test_eval["xe"], data.speaker[test_idx], seen=speakers_seen,
        seed=seed,
    )
    emo = math.nan
    if train_eval["xs"].shape[1]:
        emo = M.linear_probe(train_eval["xs"], data.emotion[train_idx], test_eval["xs"], data.emotion[test_idx])
    return {"probe_spk_from_xe": spk, "probe_emo_from_xs": emo}


def write_artifacts(folder: Path, result: TrialResult, test_eval: dict, data: TrialData, test_idx: np.ndarray) -> None:
    """result.json (the result; its predictions stand in predictions.npz: utt_id, true, pred, prob)
    and the test rows' embeddings."""
    folder.mkdir(parents=True, exist_ok=True)
    record = dataclasses.asdict(result) | {"predictions": PREDICTIONS_FILE}
    write_json_atomic(folder / "result.json", record, indent=1)
    p = result.predictions
    with atomic_path(folder / PREDICTIONS_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, utt_id=np.asarray(p["utt_id"], dtype=str), true=p["true"], pred=p["pred"],
                            prob=p["prob"])
    np.savez_compressed(
        folder / "embeddings.npz",
        xe=test_eval["xe"].astype(np.float16),
        xs=test_eval["xs"].astype(np.float16),
        emotion=np.asarray(data.emotion[test_idx], dtype=np.int64),
        speaker=np.asarray(data.speaker[test_idx], dtype=np.int64),
        rows=test_idx.astype(np.int64),
        emotion_names=np.asarray(data.emotion_names, dtype=str),
    )


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


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def _scores(evaluation: dict, data: TrialData, speakers_seen: bool) -> dict[str, float]:
    """Test-fold WA/UA; speaker scores NaN without a speaker branch or when test speakers are unseen."""
    emo_true = data.emotion[data.test_idx]
    scores = {
        "emo_wa": M.weighted_accuracy(emo_true, evaluation["emo_pred"]),
        "emo_ua": M.unweighted_accuracy(emo_true, evaluation["emo_pred"]),
        "emo_f1": M.macro_f1(emo_true, evaluation["emo_pred"]),
        "spk_wa": math.nan,
        "spk_ua": math.nan,
    }
    if evaluation["spk_pred"] is not None and speakers_seen:
        spk_true = data.speaker[data.test_idx]
        scores["spk_wa"] = M.weighted_accuracy(spk_true, evaluation["spk_pred"])
        scores["spk_ua"] = M.unweighted_accuracy(spk_true, evaluation["spk_pred"])
    return scores


def _validation_scores(evaluation: dict, data: TrialData, val_idx: np.ndarray) -> dict[str, float]:
    """Emotion WA/UA on the validation part (what best_val selects on)."""
    emo_true = data.emotion[val_idx]
    return {"val_emo_wa": M.weighted_accuracy(emo_true, evaluation["emo_pred"]),
            "val_emo_ua": M.unweighted_accuracy(emo_true, evaluation["emo_pred"])}


def _speaker_confusion(test_eval: dict, data: TrialData, test_idx: np.ndarray, speakers_seen: bool) -> list[list[int]]:
    """Order TrialData.speaker_names; empty when undefined (no speaker branch, or unseen speakers)."""
    if test_eval["spk_pred"] is None or not speakers_seen:
        return []
    n = max(len(data.speaker_names), int(data.speaker.max()) + 1)
    return M.confusion_matrix(data.speaker[test_idx], test_eval["spk_pred"], n)


def _trial_name(config: TrialConfig, data: TrialData) -> str:
    branches = config.backbone if not config.speaker_backbone else f"{config.backbone}/{config.speaker_backbone}"
    branches += f" ({config.trunk} trunk)"
    where = f" on {data.description}" if data.description else ""
    return f"trial {config.variant} {branches} seed {config.seed}{where}"


def _check_inputs(config: TrialConfig, data: TrialData, name: str) -> None:
    """What TrialConfig cannot check on its own: the data against the config."""
    if data.features.ndim != 3:
        raise TrialFailed(f"{name}: features must be [N, T, D], got shape {data.features.shape}")
    if len(data.train_idx) < 2 or len(data.test_idx) == 0:
        raise TrialFailed(f"{name}: empty fold ({len(data.train_idx)} train, {len(data.test_idx)} test rows)")
    emo = np.asarray(data.emotion)
    k = len(data.emotion_names)
    if emo.min() < 0 or emo.max() >= k:
        raise TrialFailed(f"{name}: emotion labels must be in 0..{k - 1} ({', '.join(data.emotion_names)}), "
                          f"got {emo.min()}..{emo.max()}")
