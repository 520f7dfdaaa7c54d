"""`hcld-grid bench epochs`: seconds per training epoch per backbone at the paper's shapes.

Times the real training step (hcld.train.train_step: forward, the variant's losses, backward, Adam)
on [32, 374, 768] random inputs for 4424 training utterances (139 steps an epoch). With --steps
below 139 the epoch time is extrapolated from the mean step time, and the output says so. Data
loading and evaluation are excluded. Rows are appended to a CSV (default results/bench/epochs.csv).
"""

from __future__ import annotations

from pathlib import Path

import click

from grid.cli.bench_steps import BACKBONES, append_csv, names_option


@click.command(context_settings={"max_content_width": 100})
@click.option("--backbone", "backbones", default=",".join(BACKBONES), show_default=True, callback=names_option(BACKBONES),
              metavar="LIST", help="Backbones to time, comma-separated.")
@click.option("--device", "devices", default="auto", show_default=True,
              help="cpu, cuda, or auto (cpu, plus cuda when present). Comma-separated for several.")
@click.option("--steps", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed steps per backbone; the epoch time is extrapolated when fewer than an epoch.")
@click.option("--cuda-steps", type=click.IntRange(min=1), default=None,
              help="Timed steps on CUDA (default: a whole epoch).")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Untimed steps first.")
@click.option("--model-size", default="paper", show_default=True, type=click.Choice(["paper", "small", "tiny"]))
@click.option("--variant", default="hcld", show_default=True, help="Loss variant (hcld.losses.variants).")
@click.option("--loss-impl", default="torch", show_default=True, type=click.Choice(["torch", "triton"]))
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--frames", type=int, default=374, show_default=True)
@click.option("--dim", type=int, default=768, show_default=True)
@click.option("--train-utterances", type=int, default=4424, show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/bench/epochs.csv"),
              show_default=True, help="CSV to append rows to.")
def epochs(backbones, devices, steps, cuda_steps, warmup, model_size, variant, loss_impl, batch, frames, dim,
           train_utterances, threads, out) -> None:
    """Seconds per training epoch for each backbone (CPU, and CUDA when present)."""
    import torch

    from hcld.bench_epochs import bench_epoch

    wanted = [d.strip() for d in devices.split(",") if d.strip()]
    if wanted == ["auto"]:
        wanted = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in wanted and not torch.cuda.is_available():
        raise click.ClickException("--device cuda requested but CUDA is not available on this machine")
    rows = []
    for device in wanted:
        n_steps = (cuda_steps if cuda_steps is not None else None) if device.startswith("cuda") else steps
        for backbone in backbones:
            row = bench_epoch(backbone, device=device, steps=n_steps, warmup=warmup, model_size=model_size,
                              variant=variant, loss_impl=loss_impl, batch=batch, frames=frames, dim=dim,
                              n_train=train_utterances, threads=threads)
            how = (f"extrapolated from {row['steps_timed']} of {row['steps_per_epoch']} steps"
                   if row["extrapolated"] else f"all {row['steps_per_epoch']} steps timed")
            click.echo(f"{row['device']:>32}  {backbone:<11} {row['seconds_per_step']:8.3f} s/step  "
                       f"{row['seconds_per_epoch']:9.1f} s/epoch  ({how}; {model_size}, {variant}, "
                       f"[{batch},{frames},{dim}] x {train_utterances}; no data loading or evaluation)")
            rows.append(row)
    append_csv(out, rows)
    click.echo(f"wrote {len(rows)} row(s) to {out}")
