"""`hcld-grid features`: extract (or reuse) the features of a manifest, or of a corpus as `run`
would read it, into the feature store."""

from __future__ import annotations

import time
from pathlib import Path

import click

from grid.cli.options import input_errors, numbers_option
from hcld.data.corpora import CORPUS_NAMES
from hcld.errors import HcldError
from hcld.features import EXTRACTORS

DEFAULT_STORE = Path("data/features")


@click.command()
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="manifest.parquet written by `hcld-grid data prepare` (or give --corpus and --root).")
@click.option("--corpus", type=click.Choice(CORPUS_NAMES), default=None,
              help="Instead of --manifest: read this corpus (with --root) as `run` does, into --data-dir, "
                   "so a later `run --corpus ... --root ...` finds its features there.")
@click.option("--root", type=click.Path(exists=True, path_type=Path), default=None,
              help="The corpus' folder (or metadata / manifest file) for --corpus.")
@click.option("--label-map", metavar="RAW=LABEL,...", default=None,
              help="With --corpus: merge or drop labels on top of the reader's default map, e.g. exc=hap,fru=drop.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"),
              show_default=True, help="With --corpus: where run keeps manifests, folds and the feature store.")
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
@click.option("--store", type=click.Path(path_type=Path), default=None,
              help=f"With --manifest: the feature store folder (entries are named <extractor>-<key>; "
                   f"default {DEFAULT_STORE}). With --corpus it is DATA_DIR/features.")
@click.option("--batch-size", type=int, default=None, help="Utterances per extraction batch (extractor default).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@input_errors
def features(manifest: Path | None, corpus: str | None, root: Path | None, label_map: str | None, data_dir: Path,
             extractor: str, checkpoint: Path | None, upstream: Path | None, layer: int | None,
             layers: tuple[int, ...] | None, store: Path | None, batch_size: int | None, progress: bool) -> None:
    """Compute the features of every manifest row once; later calls with the same inputs reuse them."""
    from hcld.features import extract_features
    from hcld.features.store import is_complete

    options = _extractor_options(extractor, upstream=upstream, layer=layer, layers=layers)
    if corpus is None:
        if manifest is None:
            raise HcldError("give --manifest FILE, or --corpus NAME --root PATH")
        if root is not None or label_map is not None:
            raise HcldError("--root and --label-map go with --corpus NAME")
        store = store or DEFAULT_STORE
    else:
        if manifest is not None or store is not None:
            raise HcldError("--corpus reads the corpus into --data-dir as `run` does: leave out --manifest and --store")
        if root is None:
            raise HcldError(f"--corpus {corpus} needs --root PATH: the corpus folder, or its metadata / manifest file")
        store = data_dir / "features"
    before = {p.name for p in store.iterdir() if is_complete(p)} if store.is_dir() else set()
    started = time.perf_counter()
    if corpus is None:
        fs = extract_features(manifest, extractor, store, checkpoint=checkpoint, progress=progress,
                              batch_size=batch_size, log=click.echo, **options)
    else:  # the manifest `run` would make, then its features, where `run` looks for them
        from hcld.pipeline import prepare_experiment

        if batch_size is not None:
            options["batch_size"] = batch_size
        fs = prepare_experiment(data_dir=data_dir, corpus=corpus, root=root, label_map=label_map,
                                features=extractor, hubert_checkpoint=checkpoint, feature_options=options,
                                progress=progress, log=click.echo).feature_set()
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
