"""mvsearch.core.memory (a training's peak RSS), its record on every trained trial, and the decoded
dataset shared between processes through the memory-mapped cache entry."""
from __future__ import annotations

import sys

import optuna
import pytest
import torch
from click.testing import CliRunner

from mvsearch.cli.main import main
from mvsearch.core import memory
from mvsearch.core.memory import peak_rss, reset_peak
from mvsearch.data import load_data
from mvsearch.search.record import TrialRecord
from tests.test_data import write_idx
from tests.test_search import CHEAP, write_space

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and clear_refs are Linux's")
MB200 = 200 << 20


@linux
def test_a_touched_200mb_tensor_after_a_reset_raises_the_peak_by_about_200mb():
    assert reset_peak() is True
    before = peak_rss()
    t = torch.ones(MB200 // 4)  # float32: every page written
    grown = peak_rss() - before
    del t
    assert 0.9 * MB200 < grown < 1.25 * MB200, grown


@linux
def test_a_reset_starts_the_peak_again_from_the_current_size():
    t = torch.ones(MB200 // 4)
    high = peak_rss()
    del t  # glibc hands a block this large straight back (munmap)
    assert reset_peak() is True
    assert peak_rss() < high - 0.8 * MB200


def test_elsewhere_the_reset_is_a_no_op_and_the_peak_comes_from_getrusage(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert reset_peak() is False
    peak = peak_rss()
    assert isinstance(peak, int) and peak > 0


def _trained(url: str, study: str) -> list[TrialRecord]:
    ts = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    return [TrialRecord.from_trial(t) for t in ts if not t.user_attrs.get("over_budget")]


def test_every_trained_trial_of_a_search_records_its_peak_rss(tmp_path, monkeypatch):
    monkeypatch.setenv("MVSEARCH_CACHE", str(tmp_path / "cache"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    space = write_space(tmp_path, **CHEAP)
    r = CliRunner().invoke(main, [str(a) for a in ("run", "--space", space, "--budget", "15M", "--data", CHEAP["data"],
                                                   "--storage", url, "--threads", 1, "--seed", 0, "--trials", 2)])
    assert r.exit_code == 0, r.output
    recs = _trained(url, "e2e@15M")
    assert recs and all(rec.trained for rec in recs)
    assert all(isinstance(rec.peak_rss, int) and rec.peak_rss > 50 << 20 for rec in recs), [x.peak_rss for x in recs]


def test_every_planned_training_records_its_peak_rss(tmp_path, monkeypatch):
    # fidelity, scale and validate train through TrainingStudy._train
    monkeypatch.setenv("MVSEARCH_CACHE", str(tmp_path / "cache"))
    url = f"sqlite:///{tmp_path / 'f.db'}"
    r = CliRunner().invoke(main, ["fidelity", "--space", "tiny", "--data", "synthetic", "--archs", "3", "--reference",
                                  "epochs=1,train_samples=64", "--proxy", "epochs=1,train_samples=32", "--threads", "1",
                                  "--resamples", "100", "--storage", url, "--name", "fid", "--json"])
    assert r.exit_code == 0, r.output
    recs = [x for x in _trained(url, "fid@fidelity") if x.state == "COMPLETE"]
    assert len(recs) == 9  # 3 archs x (2 reference seeds + 1 proxy seed)
    assert all(isinstance(rec.peak_rss, int) and rec.peak_rss > 50 << 20 for rec in recs), [x.peak_rss for x in recs]


def _mapped_file(t: torch.Tensor) -> str | None:
    """The file whose mapping (in /proc/self/maps) holds ``t``'s storage, or None (anonymous memory)."""
    ptr = t.untyped_storage().data_ptr()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            if lo <= ptr < hi:
                path = parts[5].strip() if len(parts) == 6 else ""
                return path if path.startswith("/") else None
    return None


@linux
def test_every_load_of_a_dataset_maps_its_one_cache_entry(tmp_path):
    # local workers then share the decoded images through the page cache instead of a copy each;
    # the load that decodes keeps its own copy (mapping the entry it just wrote would turn a later
    # in-place damage of that file into a SIGBUS in this process)
    write_idx(tmp_path / "d", size=32)
    loads = [load_data(f"idx:{tmp_path / 'd'}", resolution=32, cache_dir=tmp_path / "c") for _ in range(2)]
    assert [d.cached for d in loads] == [False, True]
    entry = str(next((tmp_path / "c" / "tensors").iterdir()))
    for d in loads:
        assert d.train_x.stride(1) == 0  # grayscale: one stored channel, viewed as three
    for t in (loads[1].train_x, loads[1].test_x, loads[1].train_y):
        assert _mapped_file(t) == entry
    assert torch.equal(loads[0].train_x, loads[1].train_x)


def test_data_that_cannot_be_cached_is_still_returned(tmp_path):
    write_idx(tmp_path / "d")
    blocked = tmp_path / "c"
    blocked.write_text("a file where the cache folder would be")
    d = load_data(f"idx:{tmp_path / 'd'}", resolution=8, cache_dir=blocked)
    assert d.cached is False and d.train_x.shape == (40, 3, 8, 8)
