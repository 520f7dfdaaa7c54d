"""Tile tuning (kernels.autotune) and the candidate configs it chooses from, through the interpreter.

Timing is replaced by a scripted clock (the interpreter's timings say nothing about a GPU), so these
check the tuner's logic: every candidate is timed on the real launch, the fastest is kept per shape
bucket and reused, a caller's tiles are never overridden, and the switch. Every candidate config's
tiles give the reference's values, so whichever the tuner picks on a device computes the same loss.
"""

import pytest
import torch
from kernel_testing import GRAD_TOL, import_interpreted, rand_labels, rand_x

from hcld.kernels import autotune, reference
from hcld.kernels import tiles as T

triton_supcon = import_interpreted("hcld.kernels.triton_supcon")
triton_icld = import_interpreted("hcld.kernels.triton_icld")
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim:DeprecationWarning")


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(autotune, "MIN_TUNED_SIZE", 1)  # tune the small problems the interpreter can run
    autotune.forget()
    yield
    autotune.forget()


class ScriptedClock:
    """Stands in for autotune.measure: runs each timed launch once (so it must work) and answers
    from `fastest`, a function of the launched plan's (block_n, block_k, stages) deciding the winner."""

    def __init__(self, monkeypatch, fastest):
        self.timed: list[T.Plan] = []
        self.fastest = fastest
        monkeypatch.setattr(autotune, "enabled", lambda device: True)
        monkeypatch.setattr(autotune, "measure", self.measure)
        real_meta = T.Plan.meta
        self.last_plan = None

        def meta(plan, dtype):  # records which plan each launch ran with
            self.last_plan = plan
            return real_meta(plan, dtype)

        monkeypatch.setattr(T.Plan, "meta", meta)

    def measure(self, launch):
        launch()
        self.timed.append(self.last_plan)
        return 1.0 if self.fastest(self.last_plan) else 2.0


def _grads(fn, tensors):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    loss = fn(*leaves)
    return loss.detach(), torch.autograd.grad(loss, leaves)


def _assert_close(got, want, dtype):
    assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-4, abs=1e-6)
    for g, w in zip(got[1], want[1]):
        scale = max(float(w.float().abs().max()), 1e-30)
        assert float((g.float() - w.float()).abs().max()) <= GRAD_TOL[dtype] * scale + 1e-6


def test_the_fastest_candidate_is_launched_and_kept_per_shape_bucket(monkeypatch):
    x, labels = rand_x(100, 40, 0), rand_labels(100, 4, 1)
    # 64x32x32 at 4 stages: the last fp32 forward candidate and, as 64x32x32 s4, the last backward one
    clock = ScriptedClock(monkeypatch, lambda p: (p.block_n, p.num_stages) == (32, 4))
    got = _grads(lambda a: triton_supcon.supcon(a, labels, temperature=0.1), [x])
    forward, backward = T.CONFIGS["fp32"]["forward"], T.CONFIGS["fp32"]["backward"]
    # each distinct candidate timed once on the real launch (none shrinks to another's plan at N=100)
    assert len(clock.timed) == len(forward) + len(backward)
    assert {(p.block_m, p.block_n, p.num_warps, p.num_stages) for p in clock.timed} == \
        {(c.block_m, c.block_n, c.num_warps, c.num_stages) for c in forward + backward}
    picked = {key[0]: config for key, config in autotune.chosen().items()}
    assert picked == {"supcon_forward": forward[-1], "supcon_backward": backward[-1]}
    assert clock.last_plan.num_stages == 4  # the launch that counted ran the pick
    _assert_close(got, _grads(lambda a: reference.supcon(a, labels, temperature=0.1), [x]), torch.float32)

    clock.timed.clear()
    _grads(lambda a: triton_supcon.supcon(a, labels, temperature=0.1), [rand_x(100, 40, 2)])
    _grads(lambda a: triton_supcon.supcon(a, labels[:90], temperature=0.1), [rand_x(90, 40, 3)])
    assert clock.timed == []  # same bucket (N up to 128): no re-timing
    _grads(lambda a: triton_supcon.supcon(a, labels[:60], temperature=0.1), [rand_x(60, 40, 4)])
    assert clock.timed  # a new bucket (64) is tuned on its own


def test_candidates_that_shrink_to_one_plan_are_timed_once(monkeypatch):
    # at N = 20 every tile shrinks to 32: the backward's first two candidates (64x64x32 and 64x32x32,
    # both 8 warps, 2 stages) become one plan; the forward's four stay apart by warps and stages
    clock = ScriptedClock(monkeypatch, lambda p: False)
    x, labels = rand_x(20, 24, 5), rand_labels(20, 3, 6)
    _grads(lambda a: triton_supcon.supcon(a, labels, temperature=0.1), [x])
    assert T.CONFIGS["fp32"]["backward"][:2] == (T.TileConfig(64, 64, 32, 8, 2), T.TileConfig(64, 32, 32, 8, 2))
    assert len(T.CONFIGS["fp32"]["forward"]) == 4 and len(clock.timed) == 4 + len(T.CONFIGS["fp32"]["backward"]) - 1
    # on a tie the earlier candidate, the default, is kept
    picked = {key[0]: c for key, c in autotune.chosen().items()}
    assert picked == {"supcon_forward": T.CONFIGS["fp32"]["forward"][0],
                      "supcon_backward": T.CONFIGS["fp32"]["backward"][0]}


def test_every_kernel_specialisation_is_tuned_under_its_own_name(monkeypatch):
    ScriptedClock(monkeypatch, lambda p: False)
    x, anchors, labels, speaker = rand_x(40, 24, 7), rand_x(4, 24, 8), rand_labels(40, 4, 9), rand_labels(40, 5, 10)
    _grads(lambda a, z: triton_supcon.label_contrastive(a, z, labels, temperature=0.1), [anchors, x])
    for negative in ("text", "printed"):
        _grads(lambda a, b: triton_icld.icld(a, b, labels, speaker, margin=0.2, negative=negative), [x, x])
    assert {key[0] for key in autotune.chosen()} == {
        "lcl_forward", "lcl_backward_anchors", "lcl_backward_samples", "icld_text_forward", "icld_text_backward",
        "icld_printed_forward", "icld_printed_backward"}


def test_small_problems_run_the_default_tiles(monkeypatch):
    """The paper's batch of 32 is launch-bound: no candidate is compiled or timed, defaults run."""
    clock = ScriptedClock(monkeypatch, lambda p: True)
    monkeypatch.setattr(autotune, "MIN_TUNED_SIZE", 64)
    x, anchors, labels = rand_x(32, 24, 18), rand_x(4, 24, 19), rand_labels(32, 4, 20)
    _grads(lambda a, z: triton_supcon.label_contrastive(a, z, labels, temperature=0.1), [anchors, x])
    assert clock.timed == [] and autotune.chosen() == {}
    _grads(lambda a: triton_supcon.supcon(a, rand_labels(64, 4, 21), temperature=0.1), [rand_x(64, 24, 22)])
    assert {key[0] for key in autotune.chosen()} == {"supcon_forward", "supcon_backward"}


def test_tiles_the_caller_fixes_are_never_tuned(monkeypatch):
    clock = ScriptedClock(monkeypatch, lambda p: True)
    x, labels = rand_x(50, 24, 11), rand_labels(50, 4, 12)
    _grads(lambda a: triton_supcon.supcon(a, labels, temperature=0.1, block_n=16), [x])
    assert clock.timed == [] and autotune.chosen() == {}
    assert clock.last_plan.block_n == 16


def test_tuning_is_for_cuda_devices_and_can_be_switched_off(monkeypatch):
    monkeypatch.delenv(autotune.ENV, raising=False)
    assert autotune.enabled(torch.device("cuda", 0))
    assert not autotune.enabled(torch.device("cpu"))
    monkeypatch.setenv(autotune.ENV, "0")
    assert not autotune.enabled(torch.device("cuda", 0))


def _candidate_tiles(key: str):
    """Each candidate's tiles, forward and backward paired in order (the interpreter ignores warps
    and stages, so the tiles are what can change a value here)."""
    forward, backward = T.CONFIGS[key]["forward"], T.CONFIGS[key]["backward"]
    return [(forward[i % len(forward)], backward[i % len(backward)]) for i in range(max(len(forward), len(backward)))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_every_candidate_config_gives_the_reference_values(monkeypatch, dtype):
    """N = 130 > every candidate's 128-column tile, D = 72 > its 64-wide K tile: each candidate runs
    with its own tiles, ragged edges included, on every loss (forward and backward tiles paired)."""
    key = T.config_key(dtype)
    n, d = 130, 72
    x, xs, anchors = rand_x(n, d, 13, dtype), rand_x(n, d, 14, dtype), rand_x(4, d, 15, dtype)
    emotion, speaker = rand_labels(n, 4, 16), rand_labels(n, 10, 17)
    cases = {
        "supcon": ([x], lambda a, **t: triton_supcon.supcon(a, emotion, temperature=0.1, **t),
                   lambda a: reference.supcon(a, emotion, temperature=0.1)),
        "lcl": ([anchors, x], lambda a, z, **t: triton_supcon.label_contrastive(a, z, emotion, temperature=0.1, **t),
                lambda a, z: reference.label_contrastive(a, z, emotion, temperature=0.1)),
        "icld": ([x, xs], lambda a, b, **t: triton_icld.icld(a, b, emotion, speaker, margin=0.2, **t),
                 lambda a, b: reference.icld(a, b, emotion, speaker, margin=0.2)),
    }
    wants = {name: _grads(ref, tensors) for name, (tensors, _, ref) in cases.items()}
    for forward, backward in _candidate_tiles(key):
        # the autograd functions plan forward and backward from one Tiling: pin each pass to its config
        configs = {"forward": forward, "backward": backward}
        real_plan, planned = T.Tiling.plan, []

        def pinned(self, m, n_, d_, dt, dev, stage):
            planned.append(real_plan(self.with_config(configs[stage]), m, n_, d_, dt, dev, stage))
            return planned[-1]

        monkeypatch.setattr(T.Tiling, "plan", pinned)
        for name, (tensors, fused, _) in cases.items():
            got = _grads(lambda *a: fused(*a), tensors)
            if name == "supcon":  # square: both passes ran at the candidates' full tile sizes
                assert [(p.block_m, p.block_n, p.block_k) for p in planned[-2:]] == \
                    [(c.block_m, c.block_n, c.block_k) for c in (forward, backward)]
            try:
                _assert_close(got, wants[name], dtype)
            except AssertionError as exc:
                raise AssertionError(f"{name} with forward {forward}, backward {backward}: {exc}") from exc
        monkeypatch.setattr(T.Tiling, "plan", real_plan)
