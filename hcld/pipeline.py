"""Data -> features -> folds, chained and cached: what a grid needs before its first trial.

`prepare_experiment` builds (or reuses) each stage under one data folder:

    data_dir/corpora/synthetic-s{seed}-n{N}/   built-in corpus, IEMOCAP layout (only without a corpus)
    data_dir/prepared/<name>/manifest.parquet  one row per utterance (a reader of hcld.data.corpora)
    data_dir/prepared/<name>/folds-*.parquet   utt_id -> fold (hcld.data.folds)
    data_dir/prepared/<name>/labels-<key>.npz  labels and folds in feature-row order (numpy only)
    data_dir/features/<extractor>-<key>/       the feature store entry (hcld.features.store)

and returns an `Experiment`: a handful of strings that pickle cheaply to Ray workers, which open
the memmapped features themselves, so every worker on a machine shares one page-cached copy.
`Experiment.trial_data` needs numpy only, like the trainer (tests/test_packaging.py).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcld.config import TrialData
from hcld.errors import DataError
from hcld.features.store import FeatureSet
from hcld.fileio import atomic_path, json_hash

SYNTH_MARKER = ".complete"
PREPARED_MARKER = "prepared.json"


@dataclass(frozen=True)
class Experiment:
    corpus: str  # "synthetic(seed=0,n=1000)" | a reader's name: "iemocap", "crema-d", "manifest", ...
    features_name: str  # a name of hcld.features.EXTRACTORS
    feature_key: str  # name of the feature store entry
    fold_scheme: str  # random5 | loso
    n_folds: int
    data_key: str  # hash of feature key + folds: two trials with the same data_key saw the same data
    emotion_names: tuple[str, ...]  # the corpus' label set, class-index order
    description: str
    feature_path: str
    labels_path: str
    manifest_path: str
    folds_path: str
    # how to compute these features again from audio (hcld.features.extractor_spec): saved with a model
    extractor: str = "{}"

    def feature_set(self) -> FeatureSet:
        return _open_feature_set(self.feature_path)

    def trial_data(self, fold: int) -> TrialData:
        if not 0 <= fold < self.n_folds:
            raise DataError(f"fold {fold} does not exist: {self.fold_scheme} has folds 0..{self.n_folds - 1}")
        labels = _load_labels(self.labels_path)
        test = np.flatnonzero(labels["fold"] == fold)
        train = np.flatnonzero(labels["fold"] != fold)
        for part, rows in (("test", test), ("train", train)):
            if rows.size == 0:
                raise DataError(f"fold {fold} of {self.fold_scheme} ({self.folds_path}) has an empty {part} set")
        return TrialData(
            features=self.feature_set().features,
            emotion=labels["emotion"], speaker=labels["speaker"], train_idx=train, test_idx=test,
            speaker_names=labels["speaker_names"].tolist(), utt_ids=labels["utt_ids"].tolist(),
            description=f"{self.description}, fold {fold}", feature_key=self.feature_key,
            emotion_names=labels["emotion_names"].tolist(), extractor=json.loads(self.extractor),
        )


# Per-process caches: a worker running many trials opens each memmap and label file once.
_FEATURE_SETS: dict[str, FeatureSet] = {}
_LABELS: dict[str, dict[str, np.ndarray]] = {}


def _open_feature_set(path: str) -> FeatureSet:
    if path not in _FEATURE_SETS:
        _FEATURE_SETS[path] = FeatureSet(path)
    return _FEATURE_SETS[path]


def _load_labels(path: str) -> dict[str, np.ndarray]:
    if path not in _LABELS:
        if not Path(path).is_file():
            raise DataError(f"{path}: labels of this experiment are missing; run prepare_experiment again")
        with np.load(path, allow_pickle=False) as npz:
            _LABELS[path] = {name: npz[name] for name in npz.files}
    return _LABELS[path]


def prepare_experiment(*, data_dir: Path, corpus: str | None = None, root: Path | None = None,
                       label_map: str | None = None, features: str = "fbank", hubert_checkpoint: Path | None = None,
                       feature_options: dict[str, Any] | None = None, fold_scheme: str = "random5",
                       fold_seed: int = 0, synth_utterances: int = 1000, synth_seed: int = 0, progress: bool = True,
                       log: Callable[[str], None] | None = None) -> Experiment:
    """Corpus -> manifest -> folds -> features, each stage reused when already complete on disk.

    `corpus` is a reader of hcld.data.corpora (with `root` its tree or file and `label_map` its
    --label-map text); None is the built-in synthetic corpus. `feature_options` go to the extractor
    (e.g. upstream=DIR, layers=(4, 8) for ssl)."""
    from hcld.data.folds import folds_filename

    say = log or print
    data_dir = Path(data_dir)
    source = _corpus(data_dir, corpus, root, label_map, synth_utterances, synth_seed)
    if corpus is None:
        _synthetic_corpus(source.root, synth_utterances, synth_seed, progress, say)
    else:
        say(f"Using {corpus} at {source.root}")
    prepared = data_dir / "prepared" / source.name
    manifest_path = _manifest(source, prepared, progress, say)
    folds_path = prepared / folds_filename(fold_scheme, fold_seed)
    folds = _folds(manifest_path, folds_path, fold_scheme, fold_seed, say)

    from hcld.features.store import extract_features

    options = dict(feature_options or {})
    fs = extract_features(manifest_path, features, data_dir / "features", checkpoint=hubert_checkpoint,
                          progress=progress, log=say, **options)
    say(f"Features: {fs.key} {list(fs.shape)} in {fs.path}")
    labels = _labels_in_row_order(fs, folds, folds_path)
    experiment = _experiment(source.label, features, fs, fold_scheme, fold_seed, labels, folds_path, prepared,
                             manifest_path, _extractor_spec(features, hubert_checkpoint, options, fs))
    if not _labels_complete(Path(experiment.labels_path), labels):
        _save_npz_atomic(Path(experiment.labels_path), labels)
    return experiment


def inspect_experiment(*, data_dir: Path, corpus: str | None = None, root: Path | None = None,
                       label_map: str | None = None, features: str = "fbank", hubert_checkpoint: Path | None = None,
                       feature_options: dict[str, Any] | None = None, fold_scheme: str = "random5",
                       fold_seed: int = 0, synth_utterances: int = 1000,
                       synth_seed: int = 0) -> Experiment | list[str]:
    """What `prepare_experiment` would return, found without synthesising, decoding audio or
    extracting features (it reads markers, the manifest, the folds and the feature index only,
    and writes nothing); or, when a stage is not on disk yet, the stages a real run would compute
    first, in order. For a dry run: its trial ids need the data key, which needs the features."""
    from hcld.data.folds import folds_filename, make_folds, read_folds
    from hcld.data.manifest import MANIFEST_NAME, read_manifest

    data_dir = Path(data_dir)
    source = _corpus(data_dir, corpus, root, label_map, synth_utterances, synth_seed)
    prepared = data_dir / "prepared" / source.name
    extract = f"extract {features} features of every utterance into {data_dir / 'features'}"
    if corpus is None and not (source.root / SYNTH_MARKER).is_file():
        return [f"write the built-in synthetic corpus ({synth_utterances} utterances) to {source.root}",
                f"read its labels and wav files into {prepared / MANIFEST_NAME}", extract]
    if not _manifest_is_current(source, prepared):
        return [f"read the labels and wav files under {source.root} into {prepared / MANIFEST_NAME}", extract]
    manifest_path = prepared / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    options = dict(feature_options or {})
    fs = _complete_feature_set(manifest, features, data_dir / "features", hubert_checkpoint, options)
    if fs is None:
        return [f"extract {features} features of the {manifest.height} utterances into {data_dir / 'features'}"]
    folds_path = prepared / folds_filename(fold_scheme, fold_seed)
    folds = read_folds(folds_path) if folds_path.is_file() else None
    if folds is None or set(folds["utt_id"].to_list()) != set(manifest["utt_id"].to_list()):
        folds = make_folds(manifest, fold_scheme, seed=fold_seed)  # in memory: cheap, written by the real run
    labels = _labels_in_row_order(fs, folds, folds_path)
    return _experiment(source.label, features, fs, fold_scheme, fold_seed, labels, folds_path, prepared,
                       manifest_path, _extractor_spec(features, hubert_checkpoint, options, fs))


@dataclass(frozen=True)
class CorpusSource:
    name: str  # folder under prepared/
    label: str  # the trial rows' `corpus`
    root: Path  # the reader's tree or file
    label_map: str | None  # --label-map text, part of what the prepared manifest was made from


def _corpus(data_dir: Path, corpus: str | None, root: Path | None, label_map: str | None,
            synth_utterances: int, synth_seed: int) -> CorpusSource:
    if corpus is None:
        if root is not None or label_map is not None:
            raise DataError("a corpus root or --label-map needs --corpus NAME (without one the built-in "
                            "synthetic corpus is used)")
        name = f"synthetic-s{synth_seed}-n{synth_utterances}"
        return CorpusSource(name, f"synthetic(seed={synth_seed},n={synth_utterances})", data_dir / "corpora" / name,
                            None)
    from hcld.data.corpora.registry import CORPORA

    if corpus not in CORPORA:
        raise DataError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
    if root is None:
        raise DataError(f"--corpus {corpus} needs --root PATH: the corpus folder, or its metadata / manifest file")
    # One prepared folder per corpus and label map: IEMOCAP's stays prepared/iemocap.
    name = corpus if not label_map else f"{corpus}-{json_hash(label_map)[:8]}"
    return CorpusSource(name, corpus, Path(root).resolve(), label_map or None)


def _extractor_spec(features: str, checkpoint: Path | None, options: dict[str, Any], fs: FeatureSet) -> str:
    """JSON of how to compute these features from audio again: hcld.features.make_extractor's
    arguments (paths absolute) and the store entry's config, which the rebuilt extractor must match."""
    arguments = {k: (str(Path(v).resolve()) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v))
                 for k, v in options.items()}
    if checkpoint is not None:
        arguments["checkpoint"] = str(Path(checkpoint).resolve())
    return json.dumps({"name": features, "arguments": arguments, "config": fs.meta.get("config", {}),
                       "layers": fs.meta.get("layers")}, sort_keys=True)


def _experiment(corpus: str, features: str, fs: FeatureSet, fold_scheme: str, fold_seed: int,
                labels: dict[str, np.ndarray], folds_path: Path, prepared: Path, manifest_path: Path,
                extractor: str) -> Experiment:
    """labels: _labels_in_row_order of the feature set (the data key hashes its rows' folds)."""
    data_key = json_hash([fs.key, json_hash(sorted(zip(labels["utt_ids"].tolist(), labels["fold"].tolist())))])[:16]
    return Experiment(
        corpus=corpus, features_name=features, feature_key=fs.key, fold_scheme=fold_scheme,
        n_folds=int(labels["fold"].max()) + 1, data_key=data_key,
        emotion_names=tuple(labels["emotion_names"].tolist()),
        description=f"{corpus} corpus, {features} features, {fold_scheme} folds (seed {fold_seed})",
        feature_path=str(fs.path), labels_path=str(prepared / f"labels-{data_key}.npz"),
        manifest_path=str(manifest_path), folds_path=str(folds_path), extractor=extractor,
    )


def _complete_feature_set(manifest, features: str, store_root: Path, checkpoint: Path | None,
                          options: dict[str, Any]) -> FeatureSet | None:
    """The complete store entry `extract_features` would reuse, or None. The key is computed
    exactly from the extractor's config (fbank and ssl: building the extractor is cheap enough for
    a dry run); the torchaudio HuBERT would load a 360 MB model, so its entry is found by what its
    key hashes: this manifest, the checkpoint's content, the last layer."""
    from hcld.features import make_extractor
    from hcld.features.store import feature_key, is_complete, manifest_digest
    from hcld.fileio import file_sha256

    digest = manifest_digest(manifest)
    if features != "hubert":
        path = Path(store_root) / feature_key(digest, features, make_extractor(features, **options).config)
        return FeatureSet(path) if is_complete(path) else None
    if checkpoint is None or not Path(checkpoint).is_file():
        return None
    sha = file_sha256(Path(checkpoint))
    for meta_file in sorted(Path(store_root).glob("hubert-*/meta.json")):
        if not is_complete(meta_file.parent):
            continue
        meta = json.loads(meta_file.read_text())
        config = meta.get("config", {})
        if (meta.get("manifest_hash") == digest and config.get("checkpoint_sha256") == sha
                and config.get("layer") == config.get("num_layers") and config.get("norm") == "scalar"):
            return FeatureSet(meta_file.parent)
    return None


def _synthetic_corpus(out: Path, utterances: int, seed: int, progress: bool, say) -> None:
    from hcld.data.synth import write_synthetic_corpus

    if (out / SYNTH_MARKER).is_file():
        say(f"Using the built-in synthetic corpus ({utterances} utterances, seed {seed}) at {out} "
            "(no --iemocap given; results are not comparable with the paper)")
        return
    say(f"Using the built-in synthetic corpus (no --iemocap given): writing {utterances} utterances, "
        f"seed {seed}, to {out}")
    if out.exists():  # an interrupted earlier write: start over
        shutil.rmtree(out)
    write_synthetic_corpus(out, utterances=utterances, seed=seed, progress=progress)
    (out / SYNTH_MARKER).write_text(json.dumps({"utterances": utterances, "seed": seed}) + "\n")


def _manifest_is_current(source: CorpusSource, prepared: Path) -> bool:
    """Whether prepared/ holds the manifest of this corpus root and label map, written after its
    marker was last reset."""
    from hcld.data.manifest import MANIFEST_NAME

    marker, manifest = prepared / PREPARED_MARKER, prepared / MANIFEST_NAME
    if not (marker.is_file() and manifest.is_file()):
        return False
    made_from = json.loads(marker.read_text())
    return (made_from.get("root") == str(source.root) and made_from.get("label_map") == source.label_map
            and os.path.getmtime(manifest) <= os.path.getmtime(marker))


def _manifest(source: CorpusSource, prepared: Path, progress: bool, say) -> Path:
    from hcld.data.corpora.common import parse_label_map
    from hcld.data.corpora.registry import prepare_corpus
    from hcld.data.manifest import MANIFEST_NAME

    if _manifest_is_current(source, prepared):
        return prepared / MANIFEST_NAME
    # the synthetic corpus is written in IEMOCAP's layout
    reader = "iemocap" if source.label.startswith("synthetic") else source.label
    label_map = parse_label_map(source.label_map) if source.label_map else None
    result = prepare_corpus(reader, source.root, prepared, label_map=label_map, progress=progress)
    counts = ", ".join(f"{e} {n}" for e, n in result.counts.items())
    say(f"Manifest: {result.total} utterances ({counts}) -> {result.manifest_path}")
    if result.skipped:
        say(f"  skipped {len(result.skipped)} file(s), e.g. {result.skipped[0][0]}: {result.skipped[0][1]}"
            f" (`hcld-grid data prepare` lists them all)")
    marker = prepared / PREPARED_MARKER
    marker.write_text(json.dumps({"root": str(source.root), "label_map": source.label_map, "counts": result.counts,
                                  "skipped": len(result.skipped)}) + "\n")
    return result.manifest_path


def _folds(manifest_path: Path, folds_path: Path, scheme: str, seed: int, say):
    from hcld.data.folds import make_folds, read_folds, write_folds
    from hcld.data.manifest import read_manifest

    manifest = read_manifest(manifest_path)
    if folds_path.is_file():
        folds = read_folds(folds_path)
        if set(folds["utt_id"].to_list()) == set(manifest["utt_id"].to_list()):
            return folds
        say(f"{folds_path} does not list the manifest's utterances; making the folds again")
    folds = make_folds(manifest, scheme, seed=seed)
    write_folds(folds, folds_path)
    return folds


def _labels_in_row_order(fs: FeatureSet, folds, folds_path: Path) -> dict[str, np.ndarray]:
    """Emotion, speaker and fold of every feature row (class and speaker ids: sorted names over the
    whole corpus)."""
    index = fs.index
    emotion_names = sorted(set(index["emotion"].to_list()))  # hcld.data.manifest.emotion_names
    emotion_index = {e: i for i, e in enumerate(emotion_names)}
    utt_ids = index["utt_id"].to_list()
    fold_of = dict(zip(folds["utt_id"].to_list(), folds["fold"].to_list()))
    missing = [u for u in utt_ids if u not in fold_of]
    if missing:
        raise DataError(f"{folds_path} has no fold for {len(missing)} utterance(s), e.g. {missing[0]}")
    names = sorted(set(index["speaker"].to_list()))
    speaker_id = {s: i for i, s in enumerate(names)}
    return {
        "emotion": np.array([emotion_index[e] for e in index["emotion"].to_list()], dtype=np.int64),
        "speaker": np.array([speaker_id[s] for s in index["speaker"].to_list()], dtype=np.int64),
        "fold": np.array([fold_of[u] for u in utt_ids], dtype=np.int64),
        "speaker_names": np.array(names, dtype=str),
        "emotion_names": np.array(emotion_names, dtype=str),
        "utt_ids": np.array(utt_ids, dtype=str),
    }


def _labels_complete(path: Path, labels: dict[str, np.ndarray]) -> bool:
    """Whether the labels file holds every array (one written before the label set was stored lacks it)."""
    if not path.is_file():
        return False
    with np.load(path, allow_pickle=False) as npz:
        return set(labels) <= set(npz.files)


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
