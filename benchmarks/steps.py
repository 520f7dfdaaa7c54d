"""`hcld-grid bench steps`: where the time of one training step goes, per backbone, at the paper's
shapes (hcld.labels.PaperShapes: batch 32, 374 frames, 768-d HuBERT features, 4424 training / 1107
test utterances), what that makes of an epoch, and of the `full` grid.

Each step is the trial's own code (hcld.placement sources, hcld.train.train_step pieces, the
optimizer of hcld.train.make_optimizer), timed stage by stage with a device sync after each stage:

    data      gather (rows out of the feature array) + copy (to the device) + convert (to fp32)
    forward   the model under the trial's autocast
    loss      every loss term of the variant and their weighted sum
    backward  through losses and model
    optimizer zero_grad + Adam

and, separately, `loop_step_s`: the same steps back to back with one sync at the end (what a trial
sees, where the GPU overlaps the host's work). `eval_epoch_s` is the per-epoch test-fold evaluation
(forward only, data included), from `--eval-batches` batches; `epoch_s` = steps_per_epoch x
loop_step_s + eval_epoch_s is the seconds per epoch (extrapolated from the timed steps), which
`bench epochs` reported before it folded into this command. Placements: `legacy` is the data path
before resident features (fp32 conversion on the host, then a pageable copy), `host` today's host
fallback (fp16 gathered on the host, pinned copy, cast on the device), `device` resident features.
The features are a synthetic fp16 memmap of `--rows` rows (IEMOCAP: 5531) in a temporary folder.
"""

from __future__ import annotations

import math
import platform
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np

from benchmarks.common import StageClock, device_list, write_csv
from grid.cli.options import names_option
from hcld.config import BACKBONES, LossImpl, ModelSize, Precision, choices
from hcld.labels import PaperShapes

PLACEMENTS = ("legacy", "host", "device")
STAGES = ("gather", "copy", "convert", "forward", "loss", "backward", "optimizer")


def synthetic_features(folder: Path, rows: int, frames: int, dim: int, seed: int = 0) -> np.memmap:
    """A read-only fp16 memmap [rows, frames, dim] of unit-normal values, as the feature store has."""
    file = folder / f"features-{rows}x{frames}x{dim}.f16"
    out = np.memmap(file, dtype=np.float16, mode="w+", shape=(rows, frames, dim))
    rng = np.random.default_rng(seed)
    for start in range(0, rows, 256):
        stop = min(rows, start + 256)
        out[start:stop] = rng.standard_normal((stop - start, frames, dim), dtype=np.float32)
    out.flush()
    return np.memmap(file, dtype=np.float16, mode="r", shape=(rows, frames, dim))


def legacy_source(features: np.ndarray, device):
    """The data path before resident features: fp16 -> fp32 on the host, then a pageable copy."""
    import torch

    from hcld.placement import FeatureSource

    class LegacyFeatures(FeatureSource):
        placement = "legacy"

        def __init__(self) -> None:
            self.device = device

        def gather(self, rows):
            return features[rows.host]

        def convert(self, x):  # on the host, before the copy
            return np.asarray(x, dtype=np.float32)

        def copy(self, x):
            return torch.from_numpy(x).to(device, non_blocking=True)

        def batch(self, rows):
            return self.copy(self.convert(self.gather(rows)))

    return LegacyFeatures()


def make_source(placement: str, features: np.ndarray, device):
    from hcld.placement import HostFeatures, feature_source

    if placement == "legacy":
        return legacy_source(features, device)
    if placement == "host":
        return HostFeatures(features, device)
    return feature_source(features, device, "device", key=f"bench-{features.shape}")


class StepBench:
    """One backbone's model, optimizer and labels; steps run through any data source."""

    def __init__(self, backbone: str, *, device, precision: str, model_size: str, variant: str, loss_impl: str,
                 batch: int, dim: int, seed: int) -> None:
        import torch

        from hcld.config import TrialConfig
        from hcld.losses.variants import variant_weights
        from hcld.train import build_model, make_optimizer

        self.device, self.batch = device, batch
        self.config = TrialConfig(backbone=backbone, model_size=model_size, variant=variant, loss_impl=loss_impl,
                                  batch_size=batch, seed=seed, precision=precision)
        self.weights = variant_weights(variant)
        torch.manual_seed(seed)
        self.model, self.anchor_source = build_model(self.config, feat_dim=dim, n_speakers=PaperShapes.SPEAKERS)
        self.model.to(device).train()
        self.optimizer = make_optimizer(self.model, self.config, device)
        self.emotion = torch.arange(batch, device=device).remainder(4)
        self.speaker = torch.arange(batch, device=device).remainder(PaperShapes.SPEAKERS)
        self.rng = np.random.default_rng(seed)

    def rows(self, n_rows: int):
        from hcld.placement import Rows

        return Rows.of(np.sort(self.rng.choice(n_rows, self.batch, replace=False)), self.device)

    @staticmethod
    def load(source, rows, clock: StageClock):
        """One batch through the source's stages, each timed (legacy converts before it copies)."""
        with clock.stage("gather"):
            x = source.gather(rows)
        stages = (("convert", source.convert), ("copy", source.copy))
        for name, fn in stages if source.placement == "legacy" else stages[::-1]:
            with clock.stage(name):
                x = fn(x)
        return x

    def split_step(self, source, rows, clock: StageClock) -> None:
        from hcld.train import autocast, loss_terms, weighted_total

        x = self.load(source, rows, clock)
        with clock.stage("forward"), autocast(self.config.precision, self.device):
            out = self.model(x)
        with clock.stage("loss"):
            terms = loss_terms(out, self.emotion, self.speaker, self.config, self.weights)
            total = weighted_total(terms, self.weights)
        with clock.stage("backward"):
            total.backward()
        with clock.stage("optimizer"):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    def loop_step(self, source, rows) -> None:
        """The trial's step as it runs in hcld.train (values stay on the device)."""
        from hcld.train import train_step

        train_step(self.model, self.optimizer, source.batch(rows), self.emotion, self.speaker, self.config,
                   self.weights)

    def eval_batch(self, source, rows) -> None:
        import torch

        from hcld.train import autocast

        with torch.no_grad(), autocast(self.config.precision, self.device):
            out = self.model(source.batch(rows))
        out["emo_logits"].argmax(1)


def count_host_syncs(bench: StepBench, source, rows) -> int | None:
    """Synchronising CUDA calls made by one real step (torch's sync debug mode); None off CUDA."""
    import torch

    if bench.device.type != "cuda":
        return None
    torch.cuda.synchronize(bench.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            bench.loop_step(source, rows)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def measure(bench: StepBench, source, features: np.ndarray, *, steps: int, warmup: int, eval_batches: int,
            data_repeats: int) -> dict:
    """Stage split, back-to-back step time and evaluation time of one (backbone, placement). The data
    stages are cheap next to a step: they are timed over `data_repeats` extra batches as well."""
    clock, n = StageClock(bench.device), len(features)
    for _ in range(warmup):
        bench.loop_step(source, bench.rows(n))
    clock.sync()
    for _ in range(data_repeats):
        bench.load(source, bench.rows(n), clock)
    for _ in range(steps):
        bench.split_step(source, bench.rows(n), clock)
    loop = back_to_back(lambda rows: bench.loop_step(source, rows), [bench.rows(n) for _ in range(steps)], clock)
    eval_batch = back_to_back(lambda rows: bench.eval_batch(source, rows),
                              [bench.rows(n) for _ in range(eval_batches)], clock)
    split = {f"{name}_s": clock.mean(name) for name in STAGES}
    return split | {"loop_step_s": loop, "eval_batch_s": eval_batch,
                    "host_syncs_per_step": count_host_syncs(bench, source, bench.rows(n))}


def back_to_back(run, batches: list, clock: StageClock) -> float:
    """Mean seconds per batch of `run` over `batches`, with one device sync after the last."""
    t0 = time.perf_counter()
    for rows in batches:
        run(rows)
    clock.sync()
    return (time.perf_counter() - t0) / len(batches)


def step_row(backbone: str, placement: str, precision: str, bench: StepBench, timing: dict, *, shape: tuple,
             steps: int, data_repeats: int, eval_batches: int, n_train: int, n_test: int, epochs: int) -> dict:
    """One CSV row: the measured split plus what it makes of an epoch and a trial."""
    import torch

    from hcld.train import describe_device

    rows, frames, dim = shape
    data = timing["gather_s"] + timing["copy_s"] + timing["convert_s"]
    split_step = sum(timing[f"{name}_s"] for name in STAGES)
    steps_per_epoch = math.ceil(n_train / bench.batch)
    eval_epoch = timing["eval_batch_s"] * math.ceil(n_test / bench.batch)
    epoch = steps_per_epoch * timing["loop_step_s"] + eval_epoch
    final_train_eval = timing["eval_batch_s"] * steps_per_epoch  # once per trial, for the probes
    return {
        "backbone": backbone, "device": describe_device(bench.device), "placement": placement,
        "precision": precision, "model_size": bench.config.model_size, "variant": bench.config.variant,
        "loss_impl": bench.config.loss_impl, "batch": bench.batch, "frames": frames, "dim": dim,
        "feature_rows": rows, "train_utterances": n_train, "test_utterances": n_test, "steps_timed": steps,
        "data_batches_timed": steps + data_repeats, "eval_batches_timed": eval_batches,
        **{k: timing[k] for k in (f"{name}_s" for name in STAGES)},
        "data_s": data, "split_step_s": split_step, "data_share": data / split_step,
        "loop_step_s": timing["loop_step_s"], "eval_batch_s": timing["eval_batch_s"],
        "eval_epoch_s": eval_epoch, "steps_per_epoch": steps_per_epoch, "epoch_s": epoch,
        "trial_s": epochs * epoch + final_train_eval, "epochs": epochs,
        "host_syncs_per_step": timing["host_syncs_per_step"],
        "threads": torch.get_num_threads(), "torch": torch.__version__, "host": platform.node(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def project_grid(rows: list[dict], trials_per_backbone: int, trials_per_gpu: float) -> dict[tuple, float]:
    """Projected wall time of the grid per (device, placement, precision) measured for every
    backbone: trials_per_backbone trials of each, `trials_per_gpu` of them running at once with
    perfect overlap (an optimistic bound: it holds while one trial leaves the GPU idle enough)."""
    groups: dict[tuple, dict[str, float]] = {}
    for row in rows:
        groups.setdefault((row["device"], row["placement"], row["precision"]), {})[row["backbone"]] = row["trial_s"]
    return {key: sum(times.values()) * trials_per_backbone / trials_per_gpu
            for key, times in groups.items() if set(times) == set(BACKBONES)}


@click.command(context_settings={"max_content_width": 100})
@click.option("--backbone", "backbones", default=",".join(BACKBONES), show_default=True,
              callback=names_option(BACKBONES), metavar="LIST", help="Backbones, comma-separated.")
@click.option("--device", "devices", default="auto", show_default=True,
              help="cpu, cuda, or auto (cpu, plus cuda when present). Comma-separated for several.")
@click.option("--placement", "placements", default=",".join(PLACEMENTS), show_default=True,
              callback=names_option(PLACEMENTS), metavar="LIST", help="Data paths to time (legacy, host, device).")
@click.option("--precision", "precisions", default=None, callback=names_option(choices(Precision)),
              metavar="LIST", help="fp32 and/or bf16 [default: fp32 on CPU, fp32,bf16 on CUDA].")
@click.option("--steps", type=click.IntRange(min=1), default=2, show_default=True,
              help="Timed steps per cell, split and back to back each (CUDA: --cuda-steps).")
@click.option("--cuda-steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--data-repeats", type=click.IntRange(min=0), default=20, show_default=True,
              help="Extra batches through the data stages alone (cheap; steadies the data split).")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Untimed steps first.")
@click.option("--eval-batches", type=click.IntRange(min=1), default=2, show_default=True,
              help="Timed evaluation batches per cell (the epoch's evaluation is extrapolated; CUDA: at least 10).")
@click.option("--rows", type=click.IntRange(min=2), default=PaperShapes.UTTERANCES, show_default=True,
              help="Rows of the synthetic feature memmap (IEMOCAP: 5531, 3.2 GB).")
@click.option("--batch", type=click.IntRange(min=2), default=PaperShapes.BATCH, show_default=True)
@click.option("--frames", type=click.IntRange(min=1), default=PaperShapes.FRAMES, show_default=True)
@click.option("--dim", type=click.IntRange(min=1), default=PaperShapes.FEATURE_DIM, show_default=True)
@click.option("--train-utterances", "n_train", type=click.IntRange(min=1), default=PaperShapes.TRAIN_UTTERANCES,
              show_default=True)
@click.option("--test-utterances", "n_test", type=click.IntRange(min=1), default=PaperShapes.TEST_UTTERANCES,
              show_default=True)
@click.option("--model-size", default="paper", show_default=True, type=click.Choice(choices(ModelSize)))
@click.option("--variant", default="hcld", show_default=True, help="Loss variant (the grid projection assumes "
              "every trial costs as much as this one: hcld is the heaviest).")
@click.option("--loss-impl", default="torch", show_default=True, type=click.Choice(choices(LossImpl)))
@click.option("--grid", "grid_name", default="full", show_default=True, help="Grid to project the wall time of.")
@click.option("--trials-per-gpu", type=click.FloatRange(min=1), default=1.0, show_default=True,
              help="Trials sharing one device at once in the projection (e.g. 4 for --gpus-per-trial 0.25).")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/bench/steps.csv"),
              show_default=True, help="CSV to append rows to.")
def steps(backbones, devices, placements, precisions, steps, cuda_steps, data_repeats, warmup, eval_batches, rows,
          batch, frames, dim, n_train, n_test, model_size, variant, loss_impl, grid_name, trials_per_gpu, threads,
          out) -> None:
    """Time split of one training step (data, forward, loss, backward, optimizer), seconds per epoch
    (with its evaluation) per backbone, and the projected wall time of a grid."""
    import torch

    from grid.plan import get_grid
    from hcld.config import TrialConfig

    if threads is not None:
        torch.set_num_threads(threads)
    wanted = device_list(devices)
    grid = get_grid(grid_name)
    config = TrialConfig(**grid.settings)
    n_folds = len(grid.folds) if grid.folds is not None else 5  # random5 and loso both have 5
    if batch > rows:
        raise click.BadParameter(f"--batch {batch} is larger than --rows {rows}")
    results = []
    with tempfile.TemporaryDirectory(prefix="hcld-bench-steps-") as tmp:
        click.echo(f"writing a synthetic fp16 feature memmap [{rows}, {frames}, {dim}] "
                   f"({rows * frames * dim * 2 / 2**30:.2f} GiB) ...")
        features = synthetic_features(Path(tmp), rows, frames, dim)
        for device_name in wanted:
            device = torch.device(device_name)
            cuda = device.type == "cuda"
            n_steps, n_eval = (cuda_steps, max(eval_batches, 10)) if cuda else (steps, eval_batches)
            for precision in precisions or (("fp32", "bf16") if cuda else ("fp32",)):
                for backbone in backbones:
                    bench = StepBench(backbone, device=device, precision=precision, model_size=model_size,
                                      variant=variant, loss_impl=loss_impl, batch=batch, dim=dim, seed=0)
                    for placement in placements:
                        source = make_source(placement, features, device)
                        timing = measure(bench, source, features, steps=n_steps, warmup=warmup, eval_batches=n_eval,
                                         data_repeats=data_repeats)
                        row = step_row(backbone, placement, precision, bench, timing, shape=features.shape,
                                       steps=n_steps, data_repeats=data_repeats, eval_batches=n_eval,
                                       n_train=n_train, n_test=n_test, epochs=config.epochs)
                        results.append(row)
                        write_csv(out, [row], append=True)  # row by row: an interrupted run keeps what it measured
                        click.echo(_line(row))
    for (device, placement, precision), seconds in project_grid(
            results, len(grid.variants) * n_folds, trials_per_gpu).items():
        click.echo(f"projected `{grid_name}` grid on {device}, {placement} features, {precision}, "
                   f"{trials_per_gpu:g} trial(s) per device: {seconds / 60:.1f} min "
                   f"({len(grid.variants) * n_folds} trials per backbone x {config.epochs} epochs, every trial "
                   f"costed as {variant})")
    click.echo(f"wrote {len(results)} row(s) to {out}")


def _line(row: dict) -> str:
    return (f"{row['device']:>12} {row['backbone']:<11} {row['placement']:<6} {row['precision']}  "
            f"data {row['data_s'] * 1e3:8.1f} ms ({row['data_share']:5.1%}: gather {row['gather_s'] * 1e3:.1f}, "
            f"copy {row['copy_s'] * 1e3:.1f}, convert {row['convert_s'] * 1e3:.1f})  "
            f"fwd {row['forward_s'] * 1e3:.1f}  loss {row['loss_s'] * 1e3:.1f}  bwd {row['backward_s'] * 1e3:.1f}  "
            f"opt {row['optimizer_s'] * 1e3:.1f}  | step {row['loop_step_s'] * 1e3:.1f} ms back to back, "
            f"epoch {row['epoch_s']:.1f} s ({row['steps_per_epoch']} steps + eval {row['eval_epoch_s']:.1f} s), "
            f"trial {row['trial_s'] / 60:.1f} min")
