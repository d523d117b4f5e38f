"""Latency: timing statistics, the backends, per-device records beside Optuna's tables, `mvsearch latency`.

No timed assertions: these tests check what is recorded (counts, order statistics, keys, ratios
as stored), never how fast anything ran. Models run at 64x64 with 1 warm-up and 3 timed runs.
"""
from __future__ import annotations

import dataclasses
import json
import platform

import numpy as np
import optuna
import pytest
import sqlalchemy
import torch
from click.testing import CliRunner

from mvsearch.arch.presets import get_preset
from mvsearch.cli.main import main
from mvsearch.core.errors import MvsearchError, StudyError
from mvsearch.latency.measure import Device, Meter, Timing, _runner, current_device, measure
from mvsearch.latency.study import measure_and_store, measure_study
from mvsearch.core.allocator import steady_allocator
from mvsearch.latency.store import Store, pick_device
from mvsearch.search.front import front
from mvsearch.search.storage import open_search
from tests._studies import RES, make_study, variant

FAST = dict(warmup=1, repeats=3)


@pytest.fixture()
def study(tmp_path):
    return make_study(tmp_path)


def fake_device(**kw) -> Device:
    base = Device("torch", 1, "cpu", "Test CPU", torch.__version__, torch.__version__)
    return dataclasses.replace(base, **kw)


def timing(median: float) -> Timing:
    return Timing.of([median - 1, median, median + 1], warmup=1)


# ---------------------------------------------------------------------- statistics and backends
def test_timing_keeps_median_quartiles_and_count():
    t = Timing.of([float(v) for v in (9, 1, 5, 3, 7, 2, 8, 4, 6)], warmup=2)
    assert (t.median_ms, t.q1_ms, t.q3_ms, t.iqr_ms, t.count, t.warmup) == (5.0, 3.0, 7.0, 4.0, 9, 2)


def test_measure_times_every_repeat_and_restores_threads():
    threads = torch.get_num_threads()
    t = measure(get_preset("mobilevit_xxs", 10), RES, threads=1, warmup=1, repeats=5)
    assert t.count == len(t.samples_ms) == 5 and all(s > 0 for s in t.samples_ms)
    assert t.q1_ms <= t.median_ms <= t.q3_ms and t.median_ms == float(np.median(t.samples_ms))
    assert torch.get_num_threads() == threads


def test_measuring_does_not_move_the_callers_random_state():
    # the search calls this between trials: building a model must not change later seeded draws
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    measure(get_preset("mobilevit_xxs", 10), RES, **FAST)
    assert torch.equal(torch.rand(3), expected)


def test_onnxruntime_runs_the_same_model_as_torch(tmp_path):
    cfg = variant(48, 2, "1x1")
    torch_out = _runner(cfg, (RES, RES), current_device("torch", 1), tmp_path)().numpy()
    ort_out = _runner(cfg, (RES, RES), current_device("onnxruntime", 1), tmp_path)()[0]
    assert ort_out.shape == torch_out.shape == (1, 10)
    np.testing.assert_allclose(ort_out, torch_out, atol=1e-4)


def test_onnxruntime_measure_records_its_runtime_version():
    import onnxruntime

    dev = current_device("onnxruntime", 1)
    assert dev.runtime_version == onnxruntime.__version__ and dev.backend == "onnxruntime"
    assert measure(get_preset("mobilevit_xxs", 10), RES, device=dev, **FAST).count == 3


@pytest.mark.parametrize("kwargs, message", [
    (dict(backend="tflite"), "--backend: must be one of torch, onnxruntime, got 'tflite'"),
    (dict(threads=0), "--threads: must be a positive integer, got 0"),
    (dict(device="tpu"), "--device: must be one of cpu, cuda, auto"),
])
def test_bad_device_options_are_named(kwargs, message):
    with pytest.raises(MvsearchError, match=message.replace("(", r"\(")):
        current_device(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(MvsearchError, match="no CUDA device is available here; use --device cpu"):
        current_device(device="cuda")
    assert current_device(device="auto").accelerator == "cpu"


@pytest.mark.parametrize("warmup, repeats", [(1, 1), (1, 2), (-1, 5)])
def test_too_few_samples_are_refused(warmup, repeats):
    with pytest.raises(MvsearchError, match="--repeats: must be an integer >= 3|--warmup: must be a non-negative"):
        measure(get_preset("mobilevit_xxs", 10), RES, warmup=warmup, repeats=repeats)


def test_meter_reuses_a_recent_reference_and_renews_an_old_one():
    meter = Meter(**FAST)
    first = meter.reference(RES, 10)
    assert meter.reference(RES, 10) is first
    meter.max_age = 0.0
    assert meter.reference(RES, 10) is not first


# ---------------------------------------------------------------------- storage
def test_records_are_kept_per_device(study):
    name, storage = study
    a, b = fake_device(), fake_device(threads=2)
    with Store(storage) as store:
        store.put(name, "trial:2", a, RES, timing(10.0), timing(5.0))
        store.put(name, "trial:2", b, RES, timing(6.0), timing(4.0))
        store.put(name, "trial:3", a, RES, timing(12.0), timing(5.0))
        store.put(name, "trial:2", a, RES, timing(11.0), timing(5.5))  # a re-measurement replaces
        on_a = {r.subject: r for r in store.records(name, a)}
        on_b = store.records(name, b)
        assert set(on_a) == {"trial:2", "trial:3"} and on_a["trial:2"].median_ms == 11.0
        assert on_a["trial:2"].ratio_xxs == pytest.approx(11.0 / 5.5) and on_a["trial:2"].ref_median_ms == 5.5
        assert [(r.subject, r.median_ms, r.device) for r in on_b] == [("trial:2", 6.0, b)]
        assert on_a["trial:2"].trial_number == 2 and on_a["trial:2"].preset is None
        assert store.devices(name) == [(a, 2), (b, 1)]
        assert store.records("other-study") == []
    assert pick_device(storage, name) == a and pick_device(storage, name, "onnxruntime") is None


def test_tables_sit_beside_optunas_and_the_study_still_loads(study):
    name, storage = study
    with Store(storage) as store:
        store.put(name, "preset:mobilevit_xs", fake_device(), RES, timing(3.0), timing(2.0))
    tables = set(sqlalchemy.inspect(sqlalchemy.create_engine(storage)).get_table_names())
    assert {"mvsearch_latency", "mvsearch_latency_devices", "trials", "studies"} <= tables
    assert len(optuna.load_study(study_name=name, storage=storage).trials) > 0


def test_reading_a_study_never_measured_is_empty_and_creates_nothing(study):
    name, storage = study
    assert pick_device(storage, name) is None
    assert "mvsearch_latency" not in sqlalchemy.inspect(sqlalchemy.create_engine(storage)).get_table_names()


def test_measure_and_store_records_one_trial_with_its_ratio(study):
    name, storage = study
    cfg = variant(64, 2, "2x2")
    r = measure_and_store(storage, name, 4, cfg, RES, **FAST)
    assert (r.trial_number, r.subject, r.count, r.resolution) == (4, "trial:4", 3, (RES, RES))
    assert r.ratio_xxs == pytest.approx(r.median_ms / r.ref_median_ms)
    with Store(storage) as store:
        assert [x.subject for x in store.records(name)] == ["trial:4"]


# ---------------------------------------------------------------------- measuring a study
def test_measure_study_measures_what_this_device_lacks(study, monkeypatch):
    name, storage = study
    first = measure_study(name, storage, **FAST)
    trained = [r.number for r in open_search(name, storage).records() if r.trained]
    subjects = [r.subject for r in first.measured]
    assert subjects == ["preset:mobilevit_xxs", "preset:mobilevit_xs", "preset:mobilevit_s"] + \
        [f"trial:{n}" for n in trained]
    assert 10 not in trained and 11 not in trained and 12 not in trained  # failed and budget-rejected
    assert first.measured[0].ratio_xxs == 1.0 and all(r.count == 3 for r in first.measured)
    assert first.resolution == (RES, RES) and first.already == 0
    again = measure_study(name, storage, **FAST)
    assert again.measured == () and again.already == len(subjects)
    # another machine sharing the database (its CPU differs) measures again, and both are kept;
    # only its front, to stay quick
    monkeypatch.setattr("mvsearch.latency.measure.cpu_model", lambda: "Another CPU")
    other = measure_study(name, storage, pareto_only=True, **FAST)
    on_front = len(front(open_search(name, storage).records(), "flops"))
    assert len(other.measured) == 3 + on_front and other.device.cpu == "Another CPU"
    with Store(storage) as store:
        assert [n for _, n in store.devices(name)] == [len(trained), on_front]


def test_force_measures_again(study):
    name, storage = study
    measure_study(name, storage, **FAST)
    assert len(measure_study(name, storage, force=True, **FAST).measured) > 0


def test_pareto_only_measures_the_front_and_the_presets(study):
    name, storage = study
    out = measure_study(name, storage, pareto_only=True, **FAST)
    on_front = {f"trial:{r.number}" for r in front(open_search(name, storage).records(), "flops")}
    assert {r.subject for r in out.measured} == on_front | {f"preset:{p}" for p in
                                                           ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s")}


def test_measure_study_on_a_missing_study(study):
    with pytest.raises(StudyError, match="no study named 'nope'"):
        measure_study("nope", study[1], **FAST)


# ---------------------------------------------------------------------- the command
def test_cli_prints_a_table_and_then_pareto_can_use_latency(study, tmp_path):
    name, storage = study
    res = CliRunner().invoke(main, ["latency", "--study", name, "--storage", storage, "--warmup", "1",
                                    "--repeats", "3", "--pareto-only"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"{name}: batch 1 at {RES}x{RES} on torch on cpu, 1 thread")
    assert lines[2].startswith("preset:mobilevit_xxs") and lines[2].split()[-1] == "1.00"
    assert lines[-1].endswith("measured, 0 already measured on this device")
    res = CliRunner().invoke(main, ["pareto", "--study", name, "--storage", storage, "--x", "latency", "--json",
                                    "-o", str(tmp_path / "lat.html")])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.output)
    assert obj["device"]["backend"] == "torch" and all(f["latency_ms"] > 0 for f in obj["front"])


def test_cli_json(study):
    name, storage = study
    res = CliRunner().invoke(main, ["latency", "--study", name, "--storage", storage, "--warmup", "0",
                                    "--repeats", "3", "--json", "--backend", "onnxruntime", "--pareto-only"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.output)
    assert obj["device"]["backend"] == "onnxruntime" and obj["measured"][0]["ratio_xxs"] == 1.0


@pytest.mark.parametrize("args, message", [
    (["--repeats", "1"], "error: --repeats: must be an integer >= 3"),
    (["--threads", "-2"], "error: --threads: must be a positive integer, got -2"),
    (["--study", "nope"], "error: no study named 'nope'"),
])
def test_cli_errors_are_one_line(study, args, message):
    name, storage = study
    argv = ["latency", "--storage", storage] + (["--study", name] if "--study" not in args else [])
    res = CliRunner().invoke(main, argv + args)
    assert res.exit_code == 2 and res.output.startswith(message) and res.output.count("\n") == 1, res.output


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator fix is for glibc")
def test_allocator_thresholds_are_fixed_once_per_process():
    assert steady_allocator() is True
    assert steady_allocator.cache_info().currsize == 1  # later calls do nothing
