"""`hcld-grid data ...`: build the synthetic corpus, read a corpus tree into a manifest, write folds."""

from __future__ import annotations

from pathlib import Path

import click

from grid.cli.options import input_errors
from hcld.data.folds import FOLD_SCHEMES
from hcld.errors import HcldError
from hcld.labels import EMOTIONS


@click.group()
def data() -> None:
    """Corpus: synthesise the built-in one, read an IEMOCAP tree, write folds."""


@data.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--utterances", default=1000, show_default=True, type=click.IntRange(min=10),
              help="Kept utterances (ang/hap/neu/sad); ~15% more with dropped labels are added.")
@click.option("--seed", default=0, show_default=True, type=int)
@input_errors
def synth(out: Path, utterances: int, seed: int) -> None:
    """Write the synthetic corpus to OUT in the IEMOCAP release layout (read it with `data prepare`)."""
    from hcld.data.synth import write_synthetic_corpus

    write_synthetic_corpus(out, utterances=utterances, seed=seed, progress=True)
    click.echo(f"wrote a synthetic IEMOCAP-layout corpus ({utterances} utterances, seed {seed}) to {out}")
    click.echo(f"next: hcld-grid data prepare --iemocap {out} --out <data dir>")


@data.command()
@click.option("--iemocap", "root", required=True, type=click.Path(path_type=Path),
              help="Folder holding Session1 ... Session5 (IEMOCAP_full_release, or a `data synth` output).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where manifest.parquet and the folds files go.")
@click.option("--strict", is_flag=True, help="Fail on the first bad file instead of skipping it.")
@click.option("--fold-seed", default=0, show_default=True, type=int, help="Seed of the random5 folds.")
@input_errors
def prepare(root: Path, out_dir: Path, strict: bool, fold_seed: int) -> None:
    """Read a corpus tree into OUT/manifest.parquet and write its random5 and loso folds next to it."""
    from hcld.data.iemocap import RELEASE_COUNTS, prepare_iemocap, read_manifest

    result = prepare_iemocap(root, out_dir, strict=strict, progress=True)
    click.echo(f"manifest: {result.manifest_path}")
    click.echo("utterances: " + ", ".join(f"{e} {result.counts[e]}" for e in EMOTIONS) + f"  total {result.total}"
               + ("  (matches the IEMOCAP release)" if result.counts == RELEASE_COUNTS else ""))
    click.echo("on the full IEMOCAP release expect "
               + ", ".join(f"{e} {RELEASE_COUNTS[e]}" for e in ("hap", "ang", "sad", "neu"))
               + f"  total {sum(RELEASE_COUNTS.values())} (the paper prints ang and sad swapped: 1084 / 1103)")
    click.echo(f"speakers ({len(result.speakers)}): {' '.join(result.speakers)}")
    if result.dropped_labels:
        click.echo("labels not used: " + ", ".join(f"{k} {v}" for k, v in result.dropped_labels.items()))
    for file, note in result.converted:
        click.echo(f"converted on load: {file}: {note}")
    if result.skipped:
        click.echo(f"skipped {len(result.skipped)} item(s):")
        for file, reason in result.skipped:
            click.echo(f"  {file}: {reason}")
    _write_all_folds(read_manifest(result.manifest_path), Path(out_dir), fold_seed)


@data.command()
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scheme", type=click.Choice(FOLD_SCHEMES), default="random5", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random5 folds.")
@input_errors
def folds(data_dir: Path, scheme: str, seed: int) -> None:
    """(Re)write DATA_DIR/folds-<scheme>.parquet from DATA_DIR/manifest.parquet and print fold sizes."""
    from hcld.data.folds import folds_filename, make_folds, write_folds
    from hcld.data.iemocap import MANIFEST_NAME, read_manifest

    manifest = read_manifest(data_dir / MANIFEST_NAME)
    table = make_folds(manifest, scheme, seed=seed)
    path = write_folds(table, data_dir / folds_filename(scheme, seed))
    click.echo(f"{scheme}: {path}")
    _echo_fold_sizes(table, manifest)


def _write_all_folds(manifest, out_dir: Path, seed: int) -> None:
    from hcld.data.folds import folds_filename, make_folds, write_folds

    for scheme in FOLD_SCHEMES:
        try:
            table = make_folds(manifest, scheme, seed=seed)
        except HcldError as err:  # e.g. loso on a corpus with a missing session: random5 still works
            click.echo(f"{scheme} folds not written: {err}")
            continue
        path = write_folds(table, out_dir / folds_filename(scheme, seed))
        click.echo(f"{scheme} folds: {path}")
        _echo_fold_sizes(table, manifest)


def _echo_fold_sizes(table, manifest) -> None:
    import polars as pl

    joined = table.join(manifest.select("utt_id", "emotion"), on="utt_id")
    sizes = joined.group_by("fold").agg(pl.len().alias("n"),
                                        *[(pl.col("emotion") == e).sum().alias(e) for e in EMOTIONS])
    for row in sizes.sort("fold").iter_rows(named=True):
        click.echo(f"  fold {row['fold']}: test {row['n']:5d}  train {manifest.height - row['n']:5d}  ("
                   + " ".join(f"{e} {row[e]}" for e in EMOTIONS) + ")")
