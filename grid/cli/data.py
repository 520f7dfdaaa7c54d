"""`hcld-grid data ...`: build the synthetic corpus, read a corpus tree into a manifest, write folds."""

from __future__ import annotations

from pathlib import Path

import click

from grid.cli.options import input_errors
from hcld.data.corpora import CORPUS_NAMES
from hcld.data.corpora.registry import CORPUS_HELP  # this module loads only for `hcld-grid data ...`
from hcld.data.folds import FOLD_SCHEMES
from hcld.errors import HcldError


@click.group()
def data() -> None:
    """Corpus: synthesise the built-in one, read a corpus into a manifest, write folds."""


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


_CORPORA_EPILOG = "\b\nCorpora (--corpus NAME: where to get it; --root):\n" + "\n".join(
    f"  {name}: {line}" for name, line in CORPUS_HELP.items())


@data.command(epilog=_CORPORA_EPILOG)
@click.option("--corpus", type=click.Choice(CORPUS_NAMES), default="iemocap", show_default=True,
              help="Which reader reads --root (the list below).")
@click.option("--root", type=click.Path(path_type=Path),
              help="The corpus folder (or metadata file) the reader expects, e.g. IEMOCAP_full_release.")
@click.option("--iemocap", "iemocap_root", type=click.Path(path_type=Path),
              help="Shorthand for --corpus iemocap --root ROOT (folder holding Session1 ... Session5).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where manifest.parquet and the folds files go.")
@click.option("--label-map", "label_map", default=None,
              help="Entries over the corpus' default label map, e.g. 'exc=hap,fru=drop' (drop: leave out).")
@click.option("--strict", is_flag=True, help="Fail on the first bad file instead of skipping it.")
@click.option("--fold-seed", default=0, show_default=True, type=int, help="Seed of the random and speaker folds.")
@input_errors
def prepare(corpus: str, root: Path | None, iemocap_root: Path | None, out_dir: Path, label_map: str | None,
            strict: bool, fold_seed: int) -> None:
    """Read a corpus into OUT/manifest.parquet and write every fold scheme that fits it next to it."""
    from hcld.data.corpora.common import parse_label_map
    from hcld.data.corpora.iemocap import RELEASE_COUNTS
    from hcld.data.corpora.registry import prepare_corpus
    from hcld.data.manifest import read_manifest

    if iemocap_root is not None:
        if root is not None:
            raise click.UsageError("give --iemocap ROOT or --root ROOT, not both")
        if corpus != "iemocap":
            raise click.UsageError(f"--iemocap is short for --corpus iemocap --root; not for --corpus {corpus}")
        root = iemocap_root
    if root is None:
        raise click.UsageError("say where the corpus is: --root PATH (or --iemocap ROOT)")

    result = prepare_corpus(corpus, root, out_dir, label_map=parse_label_map(label_map), strict=strict,
                            progress=True)
    click.echo(f"manifest: {result.manifest_path}")
    is_release = corpus == "iemocap" and not label_map and result.counts == RELEASE_COUNTS
    click.echo("utterances: " + ", ".join(f"{e} {n}" for e, n in result.counts.items()) + f"  total {result.total}"
               + ("  (matches the IEMOCAP release)" if is_release else ""))
    if corpus == "iemocap":
        click.echo("on the full IEMOCAP release expect "
                   + ", ".join(f"{e} {RELEASE_COUNTS[e]}" for e in ("hap", "ang", "sad", "neu"))
                   + f"  total {sum(RELEASE_COUNTS.values())} (the paper prints ang and sad swapped: 1084 / 1103)")
    click.echo(f"speakers ({len(result.speakers)}): " + ", ".join(f"{s} {n}" for s, n in result.speaker_counts.items()))
    if result.dropped_labels:
        click.echo("labels not used: " + ", ".join(f"{k} {v}" for k, v in result.dropped_labels.items()))
    _echo_converted(result.converted)
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
    from hcld.data.manifest import MANIFEST_NAME, read_manifest

    manifest = read_manifest(data_dir / MANIFEST_NAME)
    table = make_folds(manifest, scheme, seed=seed)
    path = write_folds(table, data_dir / folds_filename(scheme, seed))
    click.echo(f"{scheme}: {path}")
    _echo_fold_sizes(table, manifest)


def _echo_converted(converted: list[tuple[str, str]], shown: int = 5) -> None:
    """Files changed on load, grouped by what is done (every RAVDESS file is 48 kHz: one group, not 1440 lines)."""
    by_note: dict[str, list[str]] = {}
    for file, note in converted:
        by_note.setdefault(note, []).append(file)
    for note, files in by_note.items():
        click.echo(f"converted on load ({len(files)} file(s)): {note}")
        for file in files[:shown]:
            click.echo(f"  {file}")
        if len(files) > shown:
            click.echo(f"  ... and {len(files) - shown} more")


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

    from hcld.data.manifest import emotion_names

    labels = emotion_names(manifest)
    joined = table.join(manifest.select("utt_id", "emotion"), on="utt_id")
    # Aliased by position: a label word may be "n" or "fold" too.
    sizes = joined.group_by("fold").agg(pl.len().alias("_n"),
                                        *[(pl.col("emotion") == e).sum().alias(f"_{i}") for i, e in enumerate(labels)])
    for row in sizes.sort("fold").iter_rows(named=True):
        click.echo(f"  fold {row['fold']}: test {row['_n']:5d}  train {manifest.height - row['_n']:5d}  ("
                   + " ".join(f"{e} {row[f'_{i}']}" for i, e in enumerate(labels)) + ")")
