"""`hcld-grid features`: extract (or reuse) the features of a manifest into the feature store."""

from __future__ import annotations

import time
from pathlib import Path

import click

from grid.cli.options import input_errors, numbers_option
from hcld.features import EXTRACTORS


@click.command()
@click.option("--manifest", type=click.Path(path_type=Path), required=True,
              help="manifest.parquet written by `hcld-grid data prepare`.")
@click.option("--extractor", type=click.Choice(list(EXTRACTORS)), default="fbank", show_default=True,
              help="fbank needs nothing; hubert needs --checkpoint; ssl needs --upstream.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="hubert only: torchaudio's HUBERT_BASE weights, hubert_fairseq_base_ls960.pth (see README).")
@click.option("--upstream", type=click.Path(path_type=Path), default=None,
              help="ssl only: a local transformers folder of a wav2vec2/HuBERT/WavLM/data2vec-audio model "
                   "(save_pretrained output or a downloaded model folder, e.g. microsoft/wavlm-base-plus).")
@click.option("--layer", type=int, default=None,
              help="hubert, ssl: the layer to take (default: last; ssl: 0 = CNN/projection output).")
@click.option("--layers", callback=numbers_option(int), default=None, metavar="N,N,...",
              help="ssl only: several hidden states, e.g. 4,8,12, stacked along the feature dim ([.., L*D]).")
@click.option("--store", type=click.Path(path_type=Path), default=Path("data/features"), show_default=True,
              help="Feature store folder (entries are named <extractor>-<key>).")
@click.option("--batch-size", type=int, default=None, help="Utterances per extraction batch (extractor default).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@input_errors
def features(manifest: Path, extractor: str, checkpoint: Path | None, upstream: Path | None, layer: int | None,
             layers: tuple[int, ...] | None, store: Path, batch_size: int | None, progress: bool) -> None:
    """Compute the features of every manifest row once; later calls with the same inputs reuse them."""
    from hcld.features import extract_features
    from hcld.features.store import is_complete

    options = _extractor_options(extractor, upstream=upstream, layer=layer, layers=layers)
    before = {p.name for p in store.iterdir() if is_complete(p)} if store.is_dir() else set()
    started = time.perf_counter()
    fs = extract_features(manifest, extractor, store, checkpoint=checkpoint, progress=progress,
                          batch_size=batch_size, log=click.echo, **options)
    seconds = time.perf_counter() - started
    n = fs.shape[0]
    how = (f"reused (extracted {fs.meta['created_at']})" if fs.key in before
           else f"extracted in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} utt/s)")
    click.echo(f"key:   {fs.key}")
    click.echo(f"shape: {list(fs.shape)} float16")
    click.echo(f"path:  {fs.path}")
    click.echo(f"time:  {how}")


def _extractor_options(extractor: str, *, upstream: Path | None, layer: int | None,
                       layers: tuple[int, ...] | None) -> dict:
    """The extractor keyword arguments of the options given; a usage error for one the extractor ignores."""
    if layer is not None and extractor not in ("hubert", "ssl"):
        raise click.UsageError("--layer only applies to --extractor hubert or ssl")
    if layers is not None and extractor != "ssl":
        raise click.UsageError("--layers only applies to --extractor ssl")
    if layer is not None and layers is not None:
        raise click.UsageError("--layer and --layers are mutually exclusive (--layers 9 is --layer 9)")
    if upstream is not None and extractor != "ssl":
        raise click.UsageError("--upstream only applies to --extractor ssl")
    options: dict = {"layer": layer} if layer is not None else {}
    if layers is not None:
        options["layers"] = layers
    if extractor == "ssl":
        options["upstream"] = upstream  # None: the extractor says what to put there
    return options
