"""mvsearch.allocator: freed memory stays in the process inside hold_freed_memory, and only there.

Measured by minor page faults and resident memory (getrusage, /proc), never by time. A "step"
below allocates, touches and frees 176 MiB in four blocks, two of them larger than glibc's largest
dynamic mmap threshold, as a training step does with its activations.
"""
import subprocess
import sys
import textwrap

import pytest

from mvsearch.core import allocator
from mvsearch.core.allocator import hold_freed_memory

glibc = pytest.mark.skipif(allocator._glibc() is None, reason="needs glibc's malloc (Linux)")

PAGES = (64 << 20) // 4096  # pages in one 64 MiB block

#: a step, its page faults, and the process's resident MiB (also used by test_jemalloc)
STEP_HELPERS = textwrap.dedent("""
    import json, resource, sys
    import torch
    from mvsearch.core.allocator import hold_freed_memory

    def faults_of_one_step():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [torch.ones(n << 20) for n in (8, 16, 4, 16)]  # 32, 64, 16, 64 MiB, every page touched
        del blocks
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    def rss_mib():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
""")

STEPS = STEP_HELPERS + textwrap.dedent("""
    out = {"default": [faults_of_one_step() for _ in range(5)]}
    with hold_freed_memory() as held:
        out["held"] = [faults_of_one_step() for _ in range(8)]
        out["rss_inside"] = rss_mib()
        out["active"] = held
    out["rss_after"] = rss_mib()
    print(json.dumps(out))
""")


def run_fresh(env_extra=None):
    import json
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "MVSEARCH_HOLD_MEMORY")}
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def clean_env(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "MVSEARCH_HOLD_MEMORY"):
            monkeypatch.delenv(k, raising=False)


@glibc
def test_a_held_step_reuses_pages_that_glibc_would_hand_back():
    out = run_fresh()
    assert out["active"] is True
    # glibc's default: the blocks over its 32 MiB mmap ceiling are mmapped and unmapped every step
    assert min(out["default"][2:]) > PAGES, out
    # held: the heap grows to the step's peak, and then a step faults nothing in. Small blocks that
    # torch leaves between the large ones can fragment it, so it may take a few steps to get there
    # (seen: 1 or 2 steps after the first fault in one 64 MiB block more); after that, nothing
    assert max(out["held"][-3:]) < PAGES // 10, out
    assert sum(out["held"][1:]) < sum(out["default"][1:4]), out  # 7 held steps fault less than 3 unheld
    # and on leaving the block the held pages go back to the kernel
    assert out["rss_after"] < out["rss_inside"] - 100, out


@glibc
def test_opting_out_in_a_fresh_process_changes_nothing():
    out = run_fresh({"MVSEARCH_HOLD_MEMORY": "0"})
    assert out["active"] is False
    assert min(out["held"][2:]) > PAGES, out  # same page faults as without the block


@glibc
def test_nested_blocks_set_on_entry_and_restore_only_at_the_outermost(clean_env, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "_set", lambda param, value: calls.append((param, value)))
    with hold_freed_memory():
        with hold_freed_memory():
            pass
        assert calls == [(allocator.M_MMAP_MAX, 0), (allocator.M_TRIM_THRESHOLD, allocator.HOLD_TRIM)]
    assert calls[2:] == [(allocator.M_MMAP_MAX, allocator.DEFAULT_MMAP_MAX),
                         (allocator.M_MMAP_THRESHOLD, allocator.STEADY_MMAP_THRESHOLD),
                         (allocator.M_TRIM_THRESHOLD, allocator.STEADY_TRIM)]
    assert allocator._depth == 0


@glibc
def test_restored_after_an_exception(clean_env, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "_set", lambda param, value: calls.append((param, value)))
    with pytest.raises(RuntimeError):
        with hold_freed_memory():
            raise RuntimeError("boom")
    assert allocator._depth == 0
    assert calls[-1] == (allocator.M_TRIM_THRESHOLD, allocator.STEADY_TRIM)


@pytest.mark.parametrize("env", [{"MVSEARCH_HOLD_MEMORY": "0"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"},
                                 {"MALLOC_ARENA_MAX_": "2"}])
def test_opt_out_and_user_settings_win(clean_env, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert allocator.available() is False
    with hold_freed_memory() as held:
        assert held is False
    assert allocator._depth == 0


def test_disabled_changes_nothing(clean_env):
    with hold_freed_memory(False) as held:
        assert held is False
    assert allocator._depth == 0


@glibc
def test_train_holds_memory_only_while_training(clean_env):
    from mvsearch.arch.presets import get_preset
    from mvsearch.data import load_data, proxy_split
    from mvsearch.proxy.trainer import TrainConfig, train

    data = load_data("synthetic:classes=2,samples=16,size=32", resolution=32)
    split = proxy_split(data, train_samples=8, val_samples=2)
    arch = get_preset("mobilevit_xxs", num_classes=2)
    seen = []
    train(arch, split, TrainConfig(epochs=1, batch_size=4, device="cpu", bn_calibration=0),
          callback=lambda e: seen.append(allocator._depth))
    assert seen == [1] and allocator._depth == 0  # held during training, restored afterwards
    seen.clear()
    train(arch, split, TrainConfig(epochs=1, batch_size=4, device="cpu", bn_calibration=0, hold_memory=False),
          callback=lambda e: seen.append(allocator._depth))
    assert seen == [0]
