"""`hcld-grid predict`: the emotion of new wav files by a model a grid kept (--save-models)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from grid.cli.options import INPUT_ERROR, input_errors
from hcld.errors import DataError


@click.command(context_settings={"max_content_width": 100})
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="A saved model: a trial's artifacts folder (RESULTS_DIR/GRID/trials/ID), its model/ "
                   "folder, or model.pt.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file (file, emotion, probabilities).")
@click.option("--embeddings", type=click.Path(dir_okay=False, path_type=Path), metavar="OUT.npz",
              help="Also write the files' X_e and X_s (float32) with their paths to OUT.npz.")
@click.option("--upstream", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The ssl upstream folder, when it has moved since the trial (checked to be the same model).")
@click.option("--hubert-checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The torchaudio HuBERT checkpoint, when it has moved since the trial.")
@input_errors
def predict(model_path: Path, files: tuple[Path, ...], as_json: bool, embeddings: Path | None,
            upstream: Path | None, hubert_checkpoint: Path | None) -> None:
    """Print the emotion and class probabilities of each wav FILE under a saved model.

    Features are made as the model's trial made them: the first 7.5 s, the same extractor (its
    upstream folder must still be there, or be passed again), float16 as the store keeps them.
    A file that `data prepare` would skip is named with the reason and left out (exit status 2).
    """
    from hcld.data.audio import usable_audio
    from hcld.predict import predict_files, rebuild_extractor
    from hcld.saved_model import load_model

    saved = load_model(model_path)
    replace = {k: v for k, v in (("upstream", upstream), ("checkpoint", hubert_checkpoint)) if v is not None}
    extractor = rebuild_extractor(saved, replace)
    good, bad = [], []
    for f in files:
        try:
            usable_audio(f)
            good.append(f)
        except DataError as err:
            bad.append(str(err))
    for message in bad:
        click.echo(f"error: {message}", err=True)
    if good:
        out = predict_files(saved, good, extractor=extractor)
        names = saved.emotion_names
        for i, f in enumerate(out.files):
            probs = {name: float(p) for name, p in zip(names, out.prob[i])}
            if as_json:
                click.echo(json.dumps({"file": f, "emotion": out.emotion[i], "probabilities": probs}))
            else:
                click.echo(f"{f}\t{out.emotion[i]}\t" + " ".join(f"{n} {p:.3f}" for n, p in probs.items()))
        if embeddings is not None:
            import numpy as np

            embeddings.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(embeddings, files=np.asarray(out.files, dtype=str), xe=out.xe, xs=out.xs,
                                emotion_names=np.asarray(names, dtype=str))
            click.echo(f"embeddings of {len(out.files)} file(s) -> {embeddings}", err=True)
    if bad:
        click.echo(f"{len(bad)} of {len(files)} file(s) not usable (named above)", err=True)
        sys.exit(INPUT_ERROR)
