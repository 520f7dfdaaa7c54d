"""Where a trial's features live while it trains (TrialConfig.feature_placement).

- resident ("device"): the whole feature array is loaded once per worker process onto the trial's
  device (fp16 as stored; GPU memory on CUDA, one contiguous tensor in RAM on CPU) and kept there
  for the next trial of the same feature-store entry. A batch is an index_select there plus a cast.
- host: batches are gathered from the (memory-mapped) array on the host as fp16, copied to the
  device (from pinned memory on CUDA, so the copy does not block) and cast there.
- auto: resident when the array fits (RESIDENT_SHARE of the memory free now), else host, with one
  printed line saying so.

Both give the same fp32 batch, bit for bit (fp16 -> fp32 is exact), so placement never changes a
result. A source exposes its three stages (gather, copy, convert) so that the step benchmark can
time each of them; `batch` runs all three.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

# Residency may take this share of the memory free at load time; the rest is left to the model,
# its activations and other trials packed onto the same GPU (fractional GPUs).
RESIDENT_SHARE = 0.5
_LOAD_CHUNK_ROWS = 256  # rows per host -> device copy while loading (bounds the pinned buffer)

# Per worker process: (feature-store key, device) -> resident table. One entry per device, so a
# worker moving on to another feature set frees the previous one first.
_RESIDENT: dict[tuple[str, str], torch.Tensor] = {}
_TOLD_HOST: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Rows:
    """Feature rows of one or more batches, on the host (numpy, for memmap gathers) and on the
    device (for resident gathers and label lookups): copied to the device once per epoch."""

    host: np.ndarray
    device: torch.Tensor

    @classmethod
    def of(cls, rows: np.ndarray, device: torch.device) -> Rows:
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        return cls(rows, torch.from_numpy(rows).to(device))

    def __getitem__(self, part: slice) -> Rows:
        return Rows(self.host[part], self.device[part])

    def __len__(self) -> int:
        return len(self.host)


class FeatureSource:
    """gather -> copy -> convert: a batch of fp32 features on the trial's device. On CPU a batch
    is converted into a buffer reused by the next batch of the same size (a fresh 37 MB tensor per
    batch costs more in page faults than the conversion itself): a batch is valid until the next."""

    placement = ""
    device: torch.device
    _buffers: dict[tuple, torch.Tensor]

    def gather(self, rows: Rows) -> torch.Tensor:
        raise NotImplementedError

    def copy(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def convert(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 is the model's input dtype; autocast casts further where bf16 is asked for
        if x.device.type != "cpu" or x.dtype == torch.float32:
            return x.float()
        if tuple(x.shape) not in self._buffers:
            self._buffers[tuple(x.shape)] = torch.empty(x.shape, dtype=torch.float32)
        return self._buffers[tuple(x.shape)].copy_(x)

    def batch(self, rows: Rows) -> torch.Tensor:
        return self.convert(self.copy(self.gather(rows)))


class HostFeatures(FeatureSource):
    """Batches gathered from the host array (usually the feature store's memmap)."""

    placement = "host"

    def __init__(self, features: np.ndarray, device: torch.device) -> None:
        self.features, self.device = features, device
        self.pin = device.type == "cuda"
        self._buffers = {}

    def gather(self, rows: Rows) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.features[rows.host]))

    def copy(self, x: torch.Tensor) -> torch.Tensor:
        if self.pin:  # pinned: the copy is asynchronous and the host goes on queueing work
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)


class ResidentFeatures(FeatureSource):
    """Batches gathered from a table already on the device."""

    placement = "device"

    def __init__(self, table: torch.Tensor) -> None:
        self.table, self.device = table, table.device
        self._buffers = {}
        # CPU: numpy's row gather is a memcpy per row; torch's index_select of fp16 on CPU is far slower
        self._array = table.numpy() if table.device.type == "cpu" else None

    def gather(self, rows: Rows) -> torch.Tensor:
        if self._array is not None:
            return torch.from_numpy(self._array[rows.host])
        return self.table.index_select(0, rows.device)


def feature_source(features: np.ndarray, device: torch.device, placement: str, *, key: str = "",
                   log=print) -> FeatureSource:
    """The source of a trial's batches for TrialConfig.feature_placement (auto | device | host)."""
    if placement == "host":
        return HostFeatures(features, device)
    cached = _RESIDENT.get((key, str(device))) if key else None
    if cached is not None and tuple(cached.shape) == tuple(features.shape):
        return ResidentFeatures(cached)
    if placement == "auto" and not _fits(features, device):
        told = (key, str(device))
        if not key or told not in _TOLD_HOST:
            _TOLD_HOST.add(told)
            log(f"features {key or '(no store key)'} ({_gib(features.nbytes)}) do not fit on {device} "
                f"({_gib(free_bytes(device))} free): batches come from host memory "
                f"(feature_placement=device forces residency)")
        return HostFeatures(features, device)
    if key:
        for old in [k for k in _RESIDENT if k[1] == str(device)]:
            del _RESIDENT[old]  # free the previous feature set before loading the next
    table = load_resident(features, device)
    if key:
        _RESIDENT[(key, str(device))] = table
    return ResidentFeatures(table)


def load_resident(features: np.ndarray, device: torch.device) -> torch.Tensor:
    """The whole array as one tensor on `device`, in its stored dtype."""
    if device.type == "cpu" and not isinstance(features, np.memmap):
        return torch.from_numpy(np.ascontiguousarray(features))  # already in RAM: share it
    table = torch.empty(features.shape, dtype=_torch_dtype(features.dtype), device=device)
    for start in range(0, len(features), _LOAD_CHUNK_ROWS):
        chunk = torch.from_numpy(np.array(features[start : start + _LOAD_CHUNK_ROWS]))  # a writable copy
        table[start : start + len(chunk)].copy_(chunk.pin_memory() if device.type == "cuda" else chunk)
    return table


def clear_resident() -> None:
    """Drop every resident table of this process (tests; a worker switching devices)."""
    _RESIDENT.clear()
    _TOLD_HOST.clear()


def free_bytes(device: torch.device) -> int:
    """Memory free now on `device`: CUDA's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _fits(features: np.ndarray, device: torch.device) -> bool:
    if device.type == "cpu" and not isinstance(features, np.memmap):
        return True  # already in RAM; residency costs nothing
    return features.nbytes <= RESIDENT_SHARE * free_bytes(device)


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
