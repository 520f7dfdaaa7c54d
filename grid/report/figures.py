"""Report figures (PNG): confusion matrices, loss curves, 2-D projections of X_e and X_s.

Inputs are the per-trial artifacts (result.json, embeddings.npz) of the finished trials. A figure
whose inputs are missing or unreadable is skipped with a note naming what was missing: a partial
grid still gets every figure it can, and the report never stops for a figure.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from grid.report.paper import BACKBONE_LABELS, PAPER_BACKBONES, VARIANT_LABELS
from hcld.labels import EMOTIONS
from hcld.losses.variants import TERM_NAMES

LOSS_TERMS: tuple[str, ...] = ("loss_total", *TERM_NAMES)  # the terms of the curves in result.json
COMPARED: tuple[str, ...] = ("emo_only", "hcld")  # the decoupling made visible: without vs with HCLD
MAX_POINTS = 1500  # per projection panel; enough to see clusters, cheap to draw
# What each kind of figure shows; grid.report.SECTIONS places kinds beside the tables they explain.
_VERSUS = " vs ".join(VARIANT_LABELS.get(v, v) for v in COMPARED)
CAPTIONS: dict[str, str] = {
    "confusion": f"Emotion confusion matrices, {_VERSUS} "
                 "(row-normalised recall; counts in brackets; every trial summed: folds × seeds)",
    "curves": "Training loss terms per variant, mean over folds",
    "projection": f"PCA of test embeddings: X_e and X_s coloured by emotion and by speaker, {_VERSUS}",
    "expected_max": "Expected best validation UA against budget n (Dodge et al. 2019), mean over outer folds "
                    "with its spread over folds (± sample std)",
}


@dataclass(frozen=True)
class Figure:
    """One figure the report asked for: drawn (`file` is its name in the report folder) or not
    (`file` is None and `note` says why)."""

    kind: str  # a key of CAPTIONS, or "all" when a setting had nothing to draw
    backbone: str
    setting: str
    file: str | None
    note: str

    @property
    def caption(self) -> str:
        return f"{CAPTIONS.get(self.kind, self.kind)}: {BACKBONE_LABELS.get(self.backbone, self.backbone)}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _label(variant: str) -> str:
    return VARIANT_LABELS.get(variant, variant)


class _Artifacts:
    """Reads (and caches) the artifacts of the done trials of one setting."""

    def __init__(self, trials: pl.DataFrame, grid_dir: Path):
        self.grid_dir = grid_dir
        self.done = trials.filter(pl.col("status") == "done")
        self._json: dict[str, dict | None] = {}

    def trials(self, variant: str, backbone: str) -> list[dict]:
        rows = self.done.filter((pl.col("variant") == variant) & (pl.col("row_backbone") == backbone))
        return rows.sort("fold").select("trial_id", "fold", "artifacts").to_dicts()

    def folder(self, trial: dict) -> Path | None:
        return self.grid_dir / trial["artifacts"] if trial.get("artifacts") else None

    def result(self, trial: dict) -> dict | None:
        key = trial["trial_id"]
        if key not in self._json:
            folder = self.folder(trial)
            try:
                self._json[key] = json.loads((folder / "result.json").read_text()) if folder else None
            except (OSError, ValueError):
                self._json[key] = None
        return self._json[key]


def _backbones(trials: pl.DataFrame) -> list[str]:
    seen = set(trials.filter(pl.col("status") == "done")["row_backbone"].to_list())
    return [b for b in PAPER_BACKBONES if b in seen] + sorted(seen - set(PAPER_BACKBONES))


# ------------------------------------------------------------------------------------------------


def confusion_figure(arts: _Artifacts, backbone: str, path: Path) -> str:
    summed: dict[str, np.ndarray] = {}
    folds: dict[str, int] = {}  # trials summed per variant (folds x seeds)
    labels: list[str] = []  # the label set of the trials summed (a result.json older than it: IEMOCAP's)
    for variant in COMPARED:
        for trial in arts.trials(variant, backbone):
            result = arts.result(trial) or {}
            names = list(result.get("emotion_names") or EMOTIONS)
            matrix = np.asarray(result.get("confusion_emotion") or [], dtype=np.int64)
            if matrix.shape != (len(names), len(names)) or (labels and names != labels):
                continue
            labels = names
            summed[variant] = summed.get(variant, 0) + matrix
            folds[variant] = folds.get(variant, 0) + 1
    if not summed:
        return f"skipped {path.name}: no result.json with a confusion_emotion for {backbone} {COMPARED}"
    k = len(labels)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(COMPARED), figsize=(max(4.2, 0.7 * k + 1.4) * len(COMPARED), max(4, 0.7 * k)))
    for ax, variant in zip(axes, COMPARED):
        ax.set_title(f"{_label(variant)} / {BACKBONE_LABELS.get(backbone, backbone)}"
                     f" ({folds.get(variant, 0)} trial{'' if folds.get(variant) == 1 else 's'} summed)", fontsize=9)
        if variant not in summed:
            ax.text(0.5, 0.5, "no finished trials", ha="center", va="center")
            ax.set_axis_off()
            continue
        counts = summed[variant]
        recall = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # row-normalised: per-class recall
        ax.imshow(recall, vmin=0, vmax=1, cmap="Blues")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{recall[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=8,
                        color="white" if recall[i, j] > 0.6 else "black")
        ax.set_xticks(range(k), labels)
        ax.set_yticks(range(k), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    missing = [v for v in COMPARED if v not in summed]
    return f"wrote {path.name}" + (f" (no data for {missing})" if missing else "")


def _mean_curves(arts: _Artifacts, variant: str, backbone: str) -> tuple[dict[str, dict[int, float]], int]:
    """term -> {epoch: mean over folds}; and how many trials had curves."""
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    n = 0
    for trial in arts.trials(variant, backbone):
        curves = (arts.result(trial) or {}).get("curves") or []
        if curves:
            n += 1
        for point in curves:
            for term in LOSS_TERMS:
                value = point.get(term)
                if value is not None and np.isfinite(value) and "epoch" in point:
                    sums[term][int(point["epoch"])].append(float(value))
    return {t: {e: float(np.mean(v)) for e, v in sorted(by_epoch.items())} for t, by_epoch in sums.items()}, n


def curves_figure(arts: _Artifacts, backbone: str, variants: list[str], path: Path) -> str:
    per_variant = {v: _mean_curves(arts, v, backbone) for v in variants}
    per_variant = {v: c for v, c in per_variant.items() if c[1] > 0}
    if not per_variant:
        return f"skipped {path.name}: no result.json with curves for {backbone}"
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    colours = {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(variants)}  # one colour per variant
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    for ax, term in zip(axes.flat, LOSS_TERMS):
        drawn = 0
        for variant, (curves, n) in per_variant.items():
            points = curves.get(term, {})
            # A term a variant does not use is all zero: leave it out rather than draw a flat line.
            if points and any(v != 0 for v in points.values()):
                ax.plot(list(points), list(points.values()), label=f"{_label(variant)} (n={n})",
                        color=colours[variant], marker="." if len(points) < 20 else None)
                drawn += 1
        ax.set_title(term + ("" if drawn else " (unused)"), fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if drawn:
            ax.legend(fontsize=7)
    axes.flat[-1].set_axis_off()
    fig.suptitle(f"Training loss terms, mean over folds: {BACKBONE_LABELS.get(backbone, backbone)}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"wrote {path.name}"


def _embeddings(arts: _Artifacts, variant: str, backbone: str) -> tuple[dict | None, str]:
    """The first fold's test embeddings that load cleanly, and a note on which fold it was."""
    problems = []
    for trial in arts.trials(variant, backbone):
        folder = arts.folder(trial)
        path = folder / "embeddings.npz" if folder else None
        if path is None or not path.is_file():
            problems.append(f"fold {trial['fold']}: no embeddings.npz")
            continue
        try:
            with np.load(path) as npz:
                data = {k: np.asarray(npz[k]) for k in ("xe", "xs", "emotion", "speaker")}
                # written before trials stored their label set: IEMOCAP's
                data["emotion_names"] = npz["emotion_names"].tolist() if "emotion_names" in npz else list(EMOTIONS)
        except (OSError, KeyError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        n = len(data["emotion"])
        if any(data[k].ndim != 2 or len(data[k]) != n for k in ("xe", "xs")) or len(data["speaker"]) != n:
            problems.append(f"{path}: inconsistent shapes")
            continue
        return data, f"fold {trial['fold']}"
    return None, "; ".join(problems) or "no finished trials"


def projection_figure(arts: _Artifacts, backbone: str, path: Path) -> str:
    from sklearn.decomposition import PCA

    loaded = {v: _embeddings(arts, v, backbone) for v in COMPARED}
    if all(data is None for data, _ in loaded.values()):
        return f"skipped {path.name}: " + "; ".join(f"{v}: {why}" for v, (_, why) in loaded.items())
    plt = _pyplot()
    fig, axes = plt.subplots(len(COMPARED), 4, figsize=(16, 4 * len(COMPARED)), squeeze=False)
    rng = np.random.default_rng(0)
    for row, variant in zip(axes, COMPARED):
        data, where = loaded[variant]
        if data is None:
            for ax in row:
                ax.set_axis_off()
            row[0].text(0, 0.5, f"{_label(variant)}: {where}", fontsize=9)
            continue
        keep = np.arange(len(data["emotion"]))
        if keep.size > MAX_POINTS:
            keep = np.sort(rng.choice(keep, MAX_POINTS, replace=False))
        for col, (name, colour_by) in enumerate(
            [("xe", "emotion"), ("xe", "speaker"), ("xs", "emotion"), ("xs", "speaker")]
        ):
            ax = row[col]
            x = data[name][keep].astype(np.float32)
            symbol = "X_e" if name == "xe" else "X_s"
            if x.shape[1] == 0:  # e.g. emo_only trains no speaker branch: its X_s has width 0
                ax.text(0.5, 0.5, f"{_label(variant)}: no {symbol}\n(no such branch)", ha="center", va="center")
                ax.set_axis_off()
                continue
            xy = PCA(n_components=2, random_state=0).fit_transform(x) if x.shape[1] >= 2 else np.c_[x, 0 * x]
            labels = data[colour_by][keep]
            cmap = "tab10" if colour_by == "emotion" or data["speaker"].max(initial=0) < 10 else "tab20"
            n_speakers = max(int(data["speaker"].max(initial=0)), 1)
            top = len(data["emotion_names"]) - 1 if colour_by == "emotion" else n_speakers
            # Fixed colour limits: one label keeps one colour across the panels of a figure.
            sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap=cmap, vmin=0, vmax=top, s=6, alpha=0.7)
            ax.set_title(f"{_label(variant)} ({where}): {symbol} by {colour_by}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            # embeddings.npz keeps speaker ids (TrialData.speaker_names order), not names
            names = data["emotion_names"] if colour_by == "emotion" else [f"spk {i}" for i in range(top + 1)]
            handles = [plt.Line2D([], [], marker="o", ls="", color=sc.cmap(sc.norm(i)), label=label)
                       for i, label in enumerate(names)]
            ax.legend(handles=handles, fontsize=6 if colour_by == "speaker" else 7, loc="best",
                      ncol=2 if len(names) > 5 else 1)
    fig.suptitle(f"PCA of test embeddings: {BACKBONE_LABELS.get(backbone, backbone)} "
                 "(decoupled: X_e clusters by emotion not speaker, X_s by speaker)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    missing = [v for v, (d, _) in loaded.items() if d is None]
    return f"wrote {path.name}" + (f" (no embeddings for {missing})" if missing else "")


# ------------------------------------------------------------------------------------------------


def make_figures(trials: pl.DataFrame, grid_dir: Path, out_dir: Path, settings: list[str]) -> list[Figure]:
    """Draw every figure the artifacts allow, per setting in the report's order; one record per
    figure (written, or why it was skipped).

    `trials` is `Report.trials` (one outcome per trial and setting, with `row_backbone` and `setting`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for index, setting in enumerate(settings):
        in_setting = trials.filter(pl.col("setting") == setting)
        suffix = "" if len(settings) == 1 else f"_setting{index + 1}"
        arts = _Artifacts(in_setting, Path(grid_dir))
        variants = [v for v in VARIANT_LABELS if v in set(in_setting["variant"].to_list())]
        variants += sorted(set(in_setting["variant"].to_list()) - set(variants))
        backbones = _backbones(in_setting)
        if not backbones:
            figures.append(Figure("all", "", setting, None, "skipped all figures: no finished trials"))
        for backbone in backbones:
            draws = {
                "confusion": lambda p: confusion_figure(arts, backbone, p),
                "curves": lambda p: curves_figure(arts, backbone, variants, p),
                "projection": lambda p: projection_figure(arts, backbone, p),
            }
            for kind, draw in draws.items():
                path = out_dir / f"{kind}_{backbone}{suffix}.png"
                try:
                    note = draw(path)
                except Exception as exc:  # a figure must never stop the report; say what went wrong
                    note = f"skipped {path.name}: {type(exc).__name__}: {exc}"
                written = note.startswith("wrote ") and path.is_file()
                figures.append(Figure(kind, backbone, setting, path.name if written else None, note))
    return figures


def expected_max_figure(table: pl.DataFrame, backbone: str, path: Path) -> str:
    """One line per variant: grid.report.tune.expected_max_table's expected best validation UA at
    budget n, with a band of ± its sample std over outer folds."""
    cells = table.filter(pl.col("row_backbone") == backbone)
    if cells.is_empty():
        return f"skipped {path.name}: no finished search trials for {backbone}"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    variants = [v for v in VARIANT_LABELS if v in set(cells["variant"].to_list())]
    for i, variant in enumerate(variants):
        line = cells.filter(pl.col("variant") == variant).sort("n")
        n, mean = line["n"].to_numpy(), line["expected_best"].to_numpy()
        colour = plt.get_cmap("tab10")(i % 10)
        ax.plot(n, mean, marker=".", color=colour, label=_label(variant))
        sd = line["sd_folds"].fill_null(0.0).to_numpy()
        ax.fill_between(n, mean - sd, mean + sd, color=colour, alpha=0.12)
    ax.set_xlabel("budget n (configurations searched)")
    ax.set_ylabel("expected best validation UA (%)")
    ax.set_title(f"Expected best validation UA vs budget: {BACKBONE_LABELS.get(backbone, backbone)}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"wrote {path.name}"


def tune_figures(tables: dict[str, pl.DataFrame], out_dir: Path, settings: list[str]) -> list[Figure]:
    """The figures of a tune's report (none for a grid run's: it has no expected_max table)."""
    table = tables.get("expected_max")
    if table is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for index, setting in enumerate(settings):
        in_setting = table.filter(pl.col("setting") == setting)
        suffix = "" if len(settings) == 1 else f"_setting{index + 1}"
        for backbone in [b for b in PAPER_BACKBONES if b in set(in_setting["row_backbone"].to_list())]:
            path = out_dir / f"expected_max_{backbone}{suffix}.png"
            try:
                note = expected_max_figure(in_setting, backbone, path)
            except Exception as exc:  # a figure must never stop the report
                note = f"skipped {path.name}: {type(exc).__name__}: {exc}"
            written = note.startswith("wrote ") and path.is_file()
            figures.append(Figure("expected_max", backbone, setting, path.name if written else None, note))
    return figures
