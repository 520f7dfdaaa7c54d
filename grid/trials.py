"""What a trial is: its id, its row in the result store, and the spec a worker runs.

The id is a content hash of everything that decides a trial's numbers (config, fold, data key,
code version); the row schema (`SCHEMA`) is the one contract between the executors that write
rows and the report that reads them. Imports pyarrow only (see tests/test_packaging.py for why).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import socket
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

import hcld
from grid.sweeps import setting_label, swept_values
from hcld.config import TrialConfig, TrialData, TrialResult
from hcld.losses.variants import uses_speaker_branch
from hcld.metrics import METRICS, VALIDATION_METRICS

if TYPE_CHECKING:
    from grid.plan import TrialPoint
    from grid.result_store import ResultStore

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGES = ("hcld",)  # only code that decides a trial's numbers lives here

# What a row's `status` may say. A stopped trial was ended early by a tune's scheduler (ASHA): it
# finished as far as the tune is concerned (never re-run) and holds the validation scores it reached.
STATUSES = ("done", "stopped", "failed")
FINISHED = ("done", "stopped")

# How the `error` of a failed row lost to the infrastructure begins: its Ray worker process or the
# whole node died under it (grid.execute names which, and the node). Such an attempt is not the
# trial's fault, so it is not counted against --max-failures (grid.result_store.Plan), only recorded.
LOST = "lost:"

# The stages of a tune (grid.tune); rows of `hcld-grid run` have none (null).
STAGES = ("search", "final")

# One row per trial attempt. Every column but the config's is written by `trial_row` below; the
# report reads this schema (older tables lacking a column get it as nulls).
SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("grid", pa.string()),
        ("backbone", pa.string()),
        ("trunk", pa.string()),  # shared | separate | "-" (no speaker branch)
        ("speaker_backbone", pa.string()),
        ("variant", pa.string()),
        ("fold_scheme", pa.string()),
        ("fold", pa.int64()),
        ("features", pa.string()),
        ("corpus", pa.string()),
        # the label set, class-index order, comma-joined (null in rows older than it: IEMOCAP's,
        # hcld.labels.EMOTIONS)
        ("emotions", pa.string()),
        ("epochs", pa.int64()),
        ("seed", pa.int64()),
        ("loss_impl_requested", pa.string()),  # TrialConfig.loss_impl: torch | triton
        ("loss_impl", pa.string()),  # what ran (torch | triton | triton-interpreter); null if failed
        ("status", pa.string()),  # one of STATUSES
        ("error", pa.string()),
        ("selection", pa.string()),  # TrialConfig.selection: final | best_val (how reported_epoch was chosen)
        *[(m, pa.float64()) for m in METRICS],
        *[(m, pa.float64()) for m in VALIDATION_METRICS],  # the reported epoch's; NaN with final
        ("reported_epoch", pa.int64()),
        ("epochs_run", pa.int64()),  # epochs actually trained (< epochs when a scheduler stopped it)
        ("n_train", pa.int64()),  # rows the model trained on (TrialResult.sizes)
        ("n_val", pa.int64()),  # rows held out of the outer training set for selection (0 with final)
        ("n_test", pa.int64()),  # rows of the test fold
        ("seconds", pa.float64()),
        ("device", pa.string()),
        ("host", pa.string()),
        ("code_version", pa.string()),
        ("finished_at", pa.string()),
        ("attempts", pa.int64()),
        ("config_json", pa.string()),  # the whole TrialConfig: swept settings are read from here
        ("data_key", pa.string()),
        ("artifacts", pa.string()),
        # a tune's rows (grid.tune); null for `hcld-grid run`: stage = search (validation scores only,
        # test never evaluated) | final (the chosen configuration retrained on the whole outer
        # training set and tested); outer_fold = the outer fold whose training set it sees (= fold);
        # draw = index of the searched configuration (a final row: the one it retrains)
        ("stage", pa.string()),
        ("outer_fold", pa.int64()),
        ("draw", pa.int64()),
    ]
)

# One row per test utterance of a done trial (results/<grid>/predictions.parquet), from the trial's
# artifacts file hcld.train.PREDICTIONS_FILE (utt_id, true, pred, prob): the report's paired
# bootstrap reads it.
PREDICTIONS_TABLE = "predictions.parquet"  # beside trials.parquet
PREDICTION_SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("utt_id", pa.string()),
        ("emotion_true", pa.int8()),  # class index into the trial row's `emotions`
        ("emotion_pred", pa.int8()),
        ("prob", pa.list_(pa.float32())),  # one probability per class, in the same order
    ]
)


# -- ids ------------------------------------------------------------------------------------------

_code_version: str | None = None


def source_hash(root: Path = REPO_ROOT) -> str:
    """Hash of the SOURCE_PACKAGES' Python files under `root` (paths and bytes)."""
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def code_version() -> str:
    """Package version + hash of the hcld/ sources (the kernels included): equal for equal code, so a re-run
    of unchanged code finds its finished trials, and an edit to the model or a loss re-runs them.
    Benchmarks, the CLI, planning, the store and the report are outside those packages: editing
    them re-runs nothing."""
    global _code_version
    if _code_version is None:
        _code_version = f"{hcld.__version__}+{source_hash()}"
    return _code_version


def trial_id(config: TrialConfig, fold: int, data_key: str, version: str | None = None) -> str:
    """Content hash of everything that decides a trial's outcome."""
    payload = json.dumps(
        {"config": config.to_dict(), "fold": fold, "data_key": data_key,
         "code_version": version or code_version()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ExperimentLike(Protocol):
    """What trials need of the data (hcld.pipeline.Experiment; tests pass fakes)."""

    corpus: str
    features_name: str
    fold_scheme: str
    data_key: str
    emotion_names: tuple[str, ...]  # the label set, class-index order

    def trial_data(self, fold: int) -> TrialData: ...


# -- the row --------------------------------------------------------------------------------------

SIZE_COLUMNS = {"train": "n_train", "validation": "n_val", "test": "n_test"}  # TrialResult.sizes -> column


def trial_row(spec: TrialSpec, experiment: ExperimentLike, *, attempt: int, seconds: float,
              outcome: dict[str, Any] | None = None, error: str | None = None,
              status: str = "done") -> dict[str, Any]:
    """One store row for an attempt of `spec` on `experiment`.
    `outcome` is `outcome_of(result)` when the attempt finished (`status` "stopped" when a scheduler
    ended it early); else `error` says why not."""
    c: TrialConfig = spec.config
    row: dict[str, Any] = {
        "trial_id": spec.trial_id, "grid": spec.grid, "backbone": c.backbone,
        "trunk": c.trunk if uses_speaker_branch(c) else "-",
        "speaker_backbone": (c.speaker_backbone or c.backbone) if uses_speaker_branch(c) else None,
        "variant": c.variant, "fold_scheme": experiment.fold_scheme, "fold": spec.fold,
        "features": experiment.features_name, "corpus": experiment.corpus,
        "emotions": ",".join(experiment.emotion_names), "epochs": c.epochs,
        "seed": c.seed, "loss_impl_requested": c.loss_impl, "selection": c.selection, "seconds": seconds,
        "host": socket.gethostname(), "code_version": spec.code_version,
        "finished_at": now(), "attempts": attempt, "config_json": c.to_json(),
        "data_key": spec.data_key, "artifacts": f"trials/{spec.trial_id}",
        "stage": spec.stage, "outer_fold": spec.fold if spec.stage else None, "draw": spec.draw,
    }
    if outcome is None:
        row.update(status="failed", error=error or "unknown error")
    else:
        row.update(status=status, error=None, **{k: outcome.get(k) for k in OUTCOME_COLUMNS})
    return row


OUTCOME_COLUMNS = (*METRICS, *VALIDATION_METRICS, "reported_epoch", "epochs_run", *SIZE_COLUMNS.values(),
                   "device", "host", "loss_impl")


def outcome_of(result: TrialResult) -> dict[str, Any]:
    """The flat, picklable part of a TrialResult that goes into the row (curves, confusions and
    per-utterance predictions stay in the artifacts folder); what a Ray worker reports back to the
    driver. A part size the result lacks (a trial function that does not train) is None."""
    sizes = {column: result.sizes.get(part) for part, column in SIZE_COLUMNS.items()}
    return {**{m: float(result.metrics.get(m, math.nan)) for m in (*METRICS, *VALIDATION_METRICS)},
            "reported_epoch": int(result.reported_epoch), "epochs_run": len(result.curves),
            **{column: None if n is None else int(n) for column, n in sizes.items()},
            "device": result.device, "loss_impl": result.loss_impl, "host": socket.gethostname()}



def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")



# -- the trial before and after its data is known --------------------------------------------------------------------


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run one trial and the driver needs to record it."""

    trial_id: str
    grid: str
    config: TrialConfig
    fold: int
    data_key: str
    code_version: str
    artifacts_dir: str  # absolute: workers write there directly (shared storage on a cluster)
    attempts_before: int = 0  # attempts recorded in the store by earlier runs
    failures_before: int = 0  # of those, the failures that count against --max-failures (not LOST ones)
    setting: str = ""  # its swept values, e.g. "temperature=0.5" (grid.sweeps.setting_label)
    stage: str | None = None  # a tune's trial: one of STAGES (grid.tune); None for `hcld-grid run`
    draw: int | None = None  # a tune's trial: index of its searched configuration
    save_model: bool = False  # keep the reported model in its artifacts (--save-models; not in the id)

    @property
    def name(self) -> str:
        """backbone/variant/foldN (a tune's: + /search3, /final-seed1): short, for Ray's trial names."""
        name = f"{self.config.backbone}/{self.config.variant}/fold{self.fold}"
        if self.stage == "search":
            return f"{name}/search{self.draw}"
        if self.stage == "final":
            return f"{name}/final-seed{self.config.seed}"
        return name

    @property
    def label(self) -> str:
        """The name and the swept values: what progress lines print."""
        return f"{self.name} {self.setting}" if self.setting else self.name


def make_specs(points: list[TrialPoint], data_key: str, store: ResultStore,
               sweeps: typing.Iterable[str] = (), *, save_models: bool = False) -> list[TrialSpec]:
    """The planned points as specs on this data, each with its id, artifacts folder and the
    values it takes of the swept keys. `save_models`: trials that see the test fold keep their model."""
    version = code_version()
    keys = list(sweeps)
    specs = []
    for p in points:
        tid = trial_id(p.config, p.fold, data_key, version)
        specs.append(TrialSpec(tid, store.grid, p.config, p.fold, data_key, version,
                               str(store.artifacts_dir(tid)),
                               setting=setting_label(swept_values(p.config, keys)), stage=p.stage, draw=p.draw,
                               save_model=save_models and p.config.evaluate_test))
    return specs


