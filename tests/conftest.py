"""Shared test set-up: small thread counts (the suite runs on 2 cores) and a private cache dir."""
from __future__ import annotations

import os

import pytest

import mvsearch  # noqa: F401  (before torch: sets OMP_WAIT_POLICY, which OpenMP reads at load)
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # decoded-data cache and studies never touch the user's home or the repo during tests
    monkeypatch.setenv("MVSEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "mvsearch-cache"))
