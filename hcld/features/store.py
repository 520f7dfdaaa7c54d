"""Content-addressed feature store: every manifest's features computed once, shared read-only.

Layout of one entry, store_root/<extractor>-<key>/:
    features.f16    one contiguous float16 array [N, T, D] in manifest row order (memory-mapped)
    index.parquet   utt_id, emotion, speaker, session, n_frames (frames covering real audio)
    meta.json       extractor, config, shape, manifest hash, created_at, ...
    COMPLETE        written last; an entry without it is never read

The key hashes (manifest hash, extractor name, extractor config incl. checkpoint sha256), so a
changed corpus, window, layer or checkpoint gives a new entry and the same inputs give the old one.

Extraction writes into <key>.partial/ and records after every batch how many rows are done, so an
interrupted run resumes where it stopped (or restarts if the partial entry does not match); the
entry appears under its final name only through one atomic rename.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hcld.errors import DataError
from hcld.fileio import json_hash, write_json_atomic

FEATURES_FILE = "features.f16"
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"
PROGRESS_FILE = "progress.json"
MARKER_FILE = "COMPLETE"
FP16_MAX = float(np.finfo(np.float16).max)


class FeatureSet:
    """A complete store entry. Pickles as its path; the memmap and index open lazily in each process,
    so Ray workers on one machine share the page cache instead of copying the array."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not is_complete(self.path):
            raise DataError(f"feature store entry {self.path} is incomplete (no {MARKER_FILE} marker): an "
                            f"extraction was interrupted or the folder was copied partially; delete it or run "
                            f"`hcld-grid features` again to (re)extract")
        self.key = self.path.name
        self._features: np.memmap | None = None
        self._index = None
        self._meta: dict[str, Any] | None = None

    @property
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = json.loads((self.path / META_FILE).read_text())
        return self._meta

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["shape"])  # type: ignore[return-value]

    @property
    def features(self) -> np.memmap:
        """[N, T, D] float16, read-only memmap (writing to it raises)."""
        if self._features is None:
            file = self.path / FEATURES_FILE
            expected = int(np.prod(self.shape)) * 2
            if file.stat().st_size != expected:
                raise DataError(f"feature store file {file} has {file.stat().st_size} bytes, meta.json "
                                f"says shape {self.shape} ({expected} bytes); delete {self.path} and re-extract")
            self._features = np.memmap(file, dtype=np.float16, mode="r", shape=self.shape)
        return self._features

    @property
    def index(self):
        """polars DataFrame in row order: utt_id, emotion, speaker, session, n_frames."""
        if self._index is None:
            import polars as pl

            self._index = pl.read_parquet(self.path / INDEX_FILE)
        return self._index

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"FeatureSet({self.path}, shape={self.shape})"


def is_complete(path: Path) -> bool:
    return (Path(path) / MARKER_FILE).is_file()


def _short_hash(value: Any, n: int = 16) -> str:
    return json_hash(value)[:n]


def manifest_digest(manifest) -> str:
    """The manifest's content hash plus its row order (the array's rows follow the manifest's)."""
    from hcld.data.manifest import manifest_hash

    return _short_hash({"content": manifest_hash(manifest), "row_order": _short_hash(manifest["utt_id"].to_list())},
                       n=64)


def feature_key(manifest_digest: str, extractor: str, config: dict[str, Any]) -> str:
    return f"{extractor}-{_short_hash({'manifest': manifest_digest, 'extractor': extractor, 'config': config})}"


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """One extraction per key at a time (two shells, or a grid and a manual `features` call)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    write_json_atomic(path, value, indent=1, sort_keys=True)


def _resume_point(partial: Path, record: dict[str, Any]) -> int:
    """Rows already done in a partial entry that matches `record`; -1 if it must be restarted."""
    try:
        progress = json.loads((partial / PROGRESS_FILE).read_text())
        size = (partial / FEATURES_FILE).stat().st_size
    except (OSError, ValueError):
        return -1
    done = progress.pop("done", None)
    if progress != record or size != int(np.prod(record["shape"])) * 2:
        return -1
    return int(done) if isinstance(done, int) and 0 <= done <= record["shape"][0] else -1


def extract_features(manifest_path: Path, extractor: str, store_root: Path, *, checkpoint: Path | None = None,
                     progress: bool = True, batch_size: int | None = None,
                     log: Callable[[str], None] | None = None, **options: Any) -> FeatureSet:
    """Features of every manifest row; reused when an entry with the same key is complete."""
    from hcld.data.audio import load_clip
    from hcld.data.manifest import read_manifest
    from hcld.features import make_extractor

    say = log or (lambda msg: None)
    manifest = read_manifest(Path(manifest_path))
    ex = make_extractor(extractor, checkpoint=checkpoint, **options)
    digest = manifest_digest(manifest)
    key = feature_key(digest, ex.name, ex.config)
    store_root = Path(store_root)
    final, partial = store_root / key, store_root / f"{key}.partial"

    with _locked(store_root / f"{key}.lock"):
        if is_complete(final):
            return FeatureSet(final)
        if final.exists():
            say(f"feature store entry {final} has no {MARKER_FILE} marker; removing it and extracting again")
            shutil.rmtree(final)

        if is_complete(partial):  # finished, but stopped before the rename
            os.replace(partial, final)
            return FeatureSet(final)
        n = manifest.height
        shape = [n, ex.n_frames, ex.dim]
        record = {"key": key, "shape": shape}
        done = _resume_point(partial, record)
        if done < 0 and partial.exists():
            say(f"discarding inconsistent partial extraction {partial}")
            shutil.rmtree(partial)
        _check_space(store_root, shape, max(done, 0), final, say)
        if done < 0:
            partial.mkdir(parents=True)
            np.memmap(partial / FEATURES_FILE, dtype=np.float16, mode="w+", shape=tuple(shape)).flush()
            done = 0
            _write_json_atomic(partial / PROGRESS_FILE, {**record, "done": 0})
        elif done:
            say(f"resuming extraction {key} at row {done}/{n}")

        paths = manifest["path"].to_list()
        samples = [min(int(round(d * ex.sample_rate)), ex.clip_samples) for d in manifest["duration_s"].to_list()]
        out = np.memmap(partial / FEATURES_FILE, dtype=np.float16, mode="r+", shape=tuple(shape))
        step = batch_size or ex.batch_size
        started = time.perf_counter()
        bar = _progress_bar(total=n, initial=done, desc=f"{ex.name} features", enabled=progress)
        try:
            for lo in range(done, n, step):
                hi = min(lo + step, n)
                waves = np.stack([load_clip(p, sample_rate=ex.sample_rate, seconds=ex.clip_seconds)
                                  for p in paths[lo:hi]])
                frames = ex(waves, np.asarray(samples[lo:hi]))
                out[lo:hi] = np.clip(frames, -FP16_MAX, FP16_MAX).astype(np.float16)
                out.flush()  # data first, then the record that says it is there
                _write_json_atomic(partial / PROGRESS_FILE, {**record, "done": hi})
                bar.update(hi - lo)
        finally:
            bar.close()
            del out

        _finish(partial, manifest, ex, digest, samples, seconds=time.perf_counter() - started)
        os.replace(partial, final)
    return FeatureSet(final)


def _check_space(store_root: Path, shape: list[int], done: int, entry: Path, say: Callable[[str], None]) -> None:
    """Say how big the entry will be, and refuse before starting when the disk cannot hold it.

    An SSL model's hidden states are large (768 dims per layer, and `layers` multiplies that), so
    a full disk would otherwise show up hours into an extraction. The file is created sparse, so
    the space still needed is that of the rows not yet written.
    """
    n, t, d = shape
    size = n * t * d * 2
    say(f"extracting {n} utterances x {t} frames x {d} dims = {size / 1e9:.1f} GB float16 into {entry}")
    needed = (n - done) * t * d * 2
    free = shutil.disk_usage(store_root).free
    if free < needed:
        raise DataError(f"not enough disk space for feature store entry {entry.name}: it needs "
                        f"{needed / 1e9:.1f} GB more, {store_root} has {free / 1e9:.1f} GB free; free some space, "
                        f"pass another --store, or take fewer layers")


def _finish(partial: Path, manifest, ex, digest: str, samples: list[int], *, seconds: float) -> None:
    import polars as pl

    index = manifest.select("utt_id", "emotion", "speaker", "session").with_columns(
        pl.Series("n_frames", [ex.valid_frames(s) for s in samples], dtype=pl.Int32))
    index.write_parquet(partial / INDEX_FILE)
    from hcld import __version__

    meta = {"key": partial.name.removesuffix(".partial"), "extractor": ex.name, "config": ex.config,
            "shape": [manifest.height, ex.n_frames, ex.dim], "dtype": "float16", "manifest_hash": digest,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "extract_seconds": round(seconds, 3), "code_version": __version__}
    if getattr(ex, "layers", None) is not None:  # [.., L*D]: readers split the last dim into L chunks of D
        meta.update(layers=list(ex.layers), layer_dim=int(ex.layer_dim))
    (partial / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    (partial / PROGRESS_FILE).unlink()
    with open(partial / MARKER_FILE, "w") as fh:  # last: its presence means everything above is on disk
        fh.write(meta["key"] + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _progress_bar(*, total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="utt", disable=not enabled, dynamic_ncols=True)

