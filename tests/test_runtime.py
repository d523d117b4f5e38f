"""mvsearch.core.runtime: the one thread-count context, autocast, eval mode, device choice."""
from __future__ import annotations

import pytest
import torch

from mvsearch.core.errors import TrainError
from mvsearch.core.runtime import autocast, cpu_threads, eval_mode, resolve_device, usable_cpus


@pytest.fixture
def threads():
    """The thread count at the start, restored afterwards whatever the test did."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_cpu_threads_sets_the_count_and_restores_it(threads):
    with cpu_threads(threads + 1):
        assert torch.get_num_threads() == threads + 1
    assert torch.get_num_threads() == threads


def test_nested_blocks_restore_each_outer_count(threads):
    with cpu_threads(3):
        with cpu_threads(1):
            assert torch.get_num_threads() == 1
            with cpu_threads(2):
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == threads


def test_the_count_is_restored_after_an_exception(threads):
    with pytest.raises(RuntimeError):
        with cpu_threads(threads + 2):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == threads


def test_none_caps_the_count_at_the_usable_cpus(threads):
    torch.set_num_threads(usable_cpus() + 3)
    with cpu_threads(None):
        assert torch.get_num_threads() == usable_cpus()
    assert torch.get_num_threads() == usable_cpus() + 3
    torch.set_num_threads(1)
    with cpu_threads(None):
        assert torch.get_num_threads() == 1  # never raised above what the caller had


def test_autocast_is_a_no_op_on_cpu():
    with autocast(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cuda")
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_eval_mode_restores_every_submodules_own_flag():
    model = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.Sequential(torch.nn.BatchNorm1d(2)))
    model[1].eval()  # a mixed state: the outer modules train, the inner one does not
    before = [m.training for m in model.modules()]
    with eval_mode(model) as m:
        assert m is model and not any(x.training for x in model.modules())
    assert [m.training for m in model.modules()] == before


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="no CUDA GPU"):
            resolve_device("cuda")
