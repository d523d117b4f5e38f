"""``mvsearch scale`` end to end on a tiny base with synthetic data: ladder, trainings in a real
SQLite Optuna study, resume, two workers, a killed worker, Ctrl-C, export of a ladder point, and
the one-line refusals of bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from mvsearch.arch.config import ArchConfig, load_arch
from mvsearch.cli.main import main
from mvsearch.cost.analytic import analytic_cost
from mvsearch.proxy.settings import ProxySettings
from mvsearch.search import scaling as sc
from mvsearch.search.record import TrialRecord

ROOT = Path(__file__).resolve().parent.parent
TINY = """\
stem: 8
layer1: {channels: 8, blocks: 1}
layer2: {channels: 16, blocks: 1}
layer3: {channels: 16, dim: 16, depth: 1, ffn_dim: 32, heads: 2, patch: 2x2}
layer4: {channels: 16, dim: 16, depth: 1, ffn_dim: 32, heads: 2, patch: 2x2}
layer5: {channels: 24, dim: 16, depth: 1, ffn_dim: 32, heads: 2, patch: 1x1}
expansion: 2
last_channels: 32
num_classes: 10
"""
# 1 epoch on 64 synthetic images: a training takes well under a second
FAST = ["--resolution", "64", "--space", "tiny", "--data", "synthetic", "--epochs", "1", "--train-samples", "64",
        "--val-samples", "32", "--resamples", "200", "--threads", "1"]

runner = CliRunner()


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def scale(*args):
    return runner.invoke(main, ["scale", *map(str, args)])


def one_line_error(r, *words):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def trials(url: str, name: str):
    return optuna.load_study(study_name=f"{name}@scale", storage=url).get_trials(deepcopy=False)


def jobs_of(ts):
    out = []
    for t in ts:
        if t.state == TrialState.COMPLETE:
            r = TrialRecord.from_user_attrs(t.user_attrs)
            out.append((r.point, r.seed))
    return out


# ---------------------------------------------------------------------- the plan
def test_a_point_shared_by_families_trains_once_and_keys_follow_the_training():
    cfg = ArchConfig.from_yaml(TINY)
    base = sc.Base("config", "tiny.yaml", cfg, 64)
    proxy = ProxySettings(data="synthetic", resolution=32, epochs=1, train_samples=64, val_samples=32)
    rungs = sc.plan(base, [("width", {}), ("depth", {})], proxy, multipliers=[1.0, 2.0, 4.0, 8.0])
    at_one = {r.family: r.key for r in rungs if r.multiplier == 1.0}
    assert at_one["width"] == at_one["depth"]  # the base itself: one network, one key
    assert len({r.key for r in rungs}) == 7
    other = sc.plan(base, [("width", {})], ProxySettings(**{**proxy.to_dict(), "epochs": 2}), multipliers=[1.0])
    assert other[0].key != at_one["width"]  # another training is another point
    for r in rungs:  # what the plan says a rung costs is what the analytic counter says
        c = analytic_cost(r.arch, r.resolution)
        assert (r.flops, r.params, r.activations) == (c.flops, c.params, c.activations)


def test_the_resolution_family_trains_at_a_scaled_proxy_input():
    assert sc.scaled_proxy_resolution(64, 256, 256) == 64
    assert sc.scaled_proxy_resolution(64, 256, 512) == 128
    assert sc.scaled_proxy_resolution(64, 256, 288) == 72
    assert sc.scaled_proxy_resolution(32, 64, 32) == 16


# ---------------------------------------------------------------------- end to end
def test_scale_trains_fits_reports_and_resumes(base, tmp_path):
    url = f"sqlite:///{tmp_path / 'scale.db'}"
    args = ["--config", base, *FAST, "--family", "width,depth,resolution", "--flops", "1x..6x", "--points", "5",
            "--seeds", "2", "--storage", url, "--name", "tiny-scale", "--predict", "20M", "--target-error", "0.5"]
    r = scale(*args, "--json", "-o", tmp_path / "scale.html")
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    fams = out["families"]
    assert set(fams) == {"width", "depth", "resolution"}
    keys = {p["point"] for f in fams.values() for p in f["ladder"]}
    assert out["run"]["trained"] == 2 * len(keys)  # every distinct network, two seeds each
    done = jobs_of(trials(url, "tiny-scale"))
    assert sorted(done) == sorted((k, s) for k in keys for s in (0, 1))  # each job exactly once
    for f in fams.values():
        for p in f["ladder"]:
            assert p["seeds"] == 2 and len(p["trials"]) == 2 and p["val_samples"] == 32
            lo, hi = p["wilson95"]
            assert lo <= p["mean_accuracy"] <= hi
    fitted = [f for f, v in fams.items() if v["fit"] is not None]
    assert fitted, "at least one family has 4 distinct points and a law"
    for f in fitted:
        fit = fams[f]["fit"]
        b_lo, b_hi = fit["intervals"]["b"]
        assert b_lo <= fit["law"]["b"] <= b_hi
        (held,) = fit["heldout"]
        assert held["flops"] == max(p["flops"] for p in fams[f]["ladder"])  # the largest point is held out
        assert fit["predictions"][0]["flops"] == 20e6 and fit["resamples"] == 200
    assert out["best_family"], "the families are compared"
    page = tmp_path / "scale.html"
    assert page.stat().st_size > 100_000 and b'content="mvsearch' in page.read_bytes()
    # the same command again trains nothing and reports the same figures
    r2 = scale(*args, "--json")
    assert r2.exit_code == 0, r2.output
    out2 = json.loads(r2.stdout)
    assert out2["run"]["trained"] == 0
    assert out2["families"] == out["families"]
    # text output: the ladder, each point's accuracy with its interval, the fit table
    r3 = scale(*args)
    assert r3.exit_code == 0
    assert "ladder:" in r3.stdout and "±" in r3.stdout and "fit error = a*(FLOPs/1G)^-b + c" in r3.stdout
    # a ladder point is an ordinary trial: trials lists it, export writes it
    listed = runner.invoke(main, ["trials", "--storage", url, "--study", "tiny-scale"])
    assert listed.exit_code == 0 and "scale/0" in listed.stdout
    ref = fams["width"]["ladder"][-1]["trials"][0]
    ex = runner.invoke(main, ["export", "--storage", url, "--study", "tiny-scale", "--trial", ref, "--format", "yaml",
                              "-o", tmp_path / "models"])
    assert ex.exit_code == 0, ex.output + ex.stderr
    (yaml_file,) = (tmp_path / "models").glob("*.yaml")
    cfg = load_arch(yaml_file)
    assert analytic_cost(cfg, 64).flops == fams["width"]["ladder"][-1]["flops"]


def test_dry_run_prints_target_and_achieved_flops_and_touches_nothing(base, tmp_path):
    url = f"sqlite:///{tmp_path / 'dry.db'}"
    r = scale("--config", base, *FAST, "--family", "width", "--flops", "2M,4M,8M,16M", "--storage", url, "--dry-run")
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("width")]
    assert [row[6] for row in rows] == ["2M", "4M", "8M", "16M"]  # targets
    for row in rows:  # achieved within a few percent of the target
        assert abs(float(row[8].rstrip("%"))) < 10
    assert not (tmp_path / "dry.db").exists()


# ---------------------------------------------------------------------- workers
def _cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "mvsearch", "scale", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})})


def test_two_workers_share_one_study_and_train_each_point_once(base, tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    args = ["--config", base, *FAST, "--family", "width,depth", "--multipliers", "1,2,4,8", "--seeds", "2",
            "--storage", url, "--name", "two", "--json"]
    procs = [_cli(*args)]
    time.sleep(1.0)
    procs.append(_cli(*args))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e
    runs = [json.loads(o)["run"] for o, _ in outs]
    keys = {p["point"] for f in json.loads(outs[1][0])["families"].values() for p in f["ladder"]}
    done = jobs_of(trials(url, "two"))
    assert sorted(done) == sorted((k, s) for k in keys for s in (0, 1))  # each job COMPLETE exactly once
    assert sum(r["trained"] for r in runs) == len(done)
    assert all(r["trained"] > 0 for r in runs), runs  # both workers trained
    workers = {TrialRecord.from_user_attrs(t.user_attrs).worker for t in trials(url, "two")
               if t.state == TrialState.COMPLETE}
    assert len(workers) == 2


def _wait_for_running(url: str, name: str, timeout: float = 120.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if any(t.state == TrialState.RUNNING and t.user_attrs.get("proxy") for t in trials(url, name)):
                return
        except Exception:  # the database is being created
            pass
        time.sleep(0.2)
    raise AssertionError("no training started")


@pytest.mark.parametrize("how", ["sigterm", "kill"])
def test_a_stopped_or_killed_worker_leaves_a_study_that_resumes(base, tmp_path, how):
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    # a slower training (4 epochs of 512 images) so the signal lands while it trains
    args = ["--config", base, "--resolution", "64", "--space", "tiny", "--data", "synthetic:samples=2000",
            "--epochs", "4", "--train-samples", "512", "--val-samples", "64", "--threads", "1",
            "--family", "width", "--multipliers", "1,2,3,4", "--seeds", "1", "--storage", url, "--name", "stop",
            "--resamples", "200"]
    p = _cli(*args)
    _wait_for_running(url, "stop")
    p.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    states = [t.state for t in trials(url, "stop")]
    if how == "sigterm":
        assert p.returncode == 130, err
        assert err.strip().splitlines()[-1] == "interrupted"
        failed = [t for t in trials(url, "stop") if t.state == TrialState.FAIL]
        assert failed and TrialRecord.from_user_attrs(failed[0].user_attrs).interrupted
        assert TrialState.RUNNING not in states
    else:
        assert p.returncode == -signal.SIGKILL
        assert TrialState.RUNNING in states  # a killed process cannot say anything
    p2 = _cli(*args, "--json")
    out2, err2 = p2.communicate(timeout=600)
    assert p2.returncode == 0, err2
    if how == "kill":
        assert "left running by a worker that died" in err2
    ts = trials(url, "stop")
    assert TrialState.RUNNING not in [t.state for t in ts]
    assert len(jobs_of(ts)) == 4  # every point trained once, the interrupted or killed one again


# ---------------------------------------------------------------------- bad input: one line, exit 2
@pytest.mark.parametrize("extra, words", [
    (["--family", "widht", "--multipliers", "1,2,3,4"], ["widht", "width"]),
    (["--family", "width", "--multipliers", "1,2,3"], ["at least 4 ladder points", "--points"]),
    (["--family", "width", "--flops", "1M..8M", "--points", "3"], ["at least 4 ladder points"]),
    (["--family", "width", "--flops", "1M..8M"], ["--points"]),
    (["--family", "width", "--flops", "1M,2M,3M,4M", "--multipliers", "1,2,3,4"], ["--multipliers"]),
    (["--family", "width"], ["--flops"]),
    (["--family", "depth", "--flops", "1k,2M,4M,8M"], ["smallest"]),
    (["--family", "width", "--flops", "2M..1M", "--points", "4"], ["high end"]),
    (["--family", "width", "--multipliers", "1,2,x,4"], ["--multipliers"]),
    (["--family", "width", "--multipliers", "1,2,3,4", "--holdout", "2"], ["--holdout"]),
    (["--family", "width", "--multipliers", "1,2,3,4", "--seeds", "0"], ["--seeds"]),
    (["--family", "width", "--multipliers", "1,2,3,4", "--name", "../x"], ["--name"]),
    (["--family", "width", "--multipliers", "1,2,3,4", "--target-error", "2"], ["--target-error"]),
    (["--family", "width", "--multipliers", "1,2,3,4", "--compound", "1.2,1.1"], ["--compound"]),
])
def test_bad_input_is_one_line(base, tmp_path, extra, words):
    r = scale("--config", base, *FAST, "--storage", f"sqlite:///{tmp_path / 'bad.db'}", *extra)
    one_line_error(r, *words)
    assert not (tmp_path / "bad.db").exists()  # nothing was created


def test_bad_bases_are_one_line(base, tmp_path):
    one_line_error(scale(*FAST, "--family", "width", "--multipliers", "1,2,3,4"), "exactly one base")
    one_line_error(scale("--preset", "mobilevit_xxs", "--config", base, "--multipliers", "1,2,3,4"),
                   "exactly one base", "--preset and --config")
    one_line_error(scale("--preset", "mobilevit_xxx", "--multipliers", "1,2,3,4", "--dry-run"), "mobilevit_xxs")
    # a base trial that does not exist: the tiny study made above has no trial 99
    url = f"sqlite:///{tmp_path / 'src.db'}"
    r = scale("--config", base, *FAST, "--family", "width", "--multipliers", "1,2,3,4", "--seeds", "1",
              "--storage", url, "--name", "src")
    assert r.exit_code == 0, r.output
    one_line_error(scale("--trial", "scale/99", "--study", "src", "--storage", url, "--multipliers", "1,2,3,4",
                         "--dry-run"), "no trial scale/99")
    # a scaling study of one base refuses another base under the same name
    r = scale("--config", base, *FAST, "--resolution", "96", "--family", "width", "--multipliers", "1,2,3,4",
              "--storage", url, "--name", "src")
    one_line_error(r, "scales", "another --name")


def test_a_trial_of_a_study_is_a_base(base, tmp_path):
    url = f"sqlite:///{tmp_path / 'src.db'}"
    r = scale("--config", base, *FAST, "--family", "width", "--multipliers", "1,2,3,4", "--seeds", "1",
              "--storage", url, "--name", "src")
    assert r.exit_code == 0, r.output
    r = scale("--trial", "scale/1", "--study", "src", "--storage", url, "--family", "depth", "--multipliers",
              "1,2,3,4", "--dry-run", "--json")
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    assert out["base"]["kind"] == "trial" and out["base"]["label"] == "src scale/1"
    assert out["proxy"]["data"] == "synthetic" and out["proxy"]["epochs"] == 1  # the trial's own training
    src = [t for t in trials(url, "src") if t.number == 1][0]
    assert out["base"]["arch"] == src.user_attrs["arch"]


def test_measure_latency_times_each_point_at_its_own_resolution(base, tmp_path):
    from mvsearch.latency.store import latencies, pick_device

    url = f"sqlite:///{tmp_path / 'lat.db'}"
    r = scale("--config", base, *FAST, "--family", "resolution", "--multipliers", "1,2,4,8", "--seeds", "1",
              "--storage", url, "--name", "lat", "--measure-latency", "--json")
    assert r.exit_code == 0, r.output + r.stderr
    ladder = json.loads(r.stdout)["families"]["resolution"]["ladder"]
    assert all(p["latency_ms"] and p["latency_ms"] > 0 for p in ladder)
    stored = latencies(url, "lat", pick_device(url, "lat"))
    for p in ladder:
        rec = stored[f"trial:{p['trials'][0]}"]
        assert rec.resolution == (p["resolution"], p["resolution"])  # not the base's
    assert len({p["resolution"] for p in ladder}) == 4


def test_a_preset_is_compared_with_the_nearest_point_or_else_with_the_law():
    from mvsearch.analysis.scaling_report import build

    base = sc.preset_base("mobilevit_xxs")
    proxy = ProxySettings(data="synthetic", epochs=1, train_samples=64, val_samples=2000)
    rungs = sc.plan(base, [("width", {})], proxy, multipliers=[0.5, 1.0, 2.0, 4.0, 8.0],
                    presets=["mobilevit_xs", "mobilevit_s"])

    def acc(flops):  # a clean law: error = 0.1 * (F/1G)^-0.5 + 0.2
        return 1 - (0.1 * (flops / 1e9) ** -0.5 + 0.2)

    results = {}
    for r in rungs:
        if r.preset == "mobilevit_xs":
            a = acc(r.flops) - 0.10  # 10 points below the family at its FLOPs: a clear loss for the preset
        elif r.preset == "mobilevit_s":
            a = acc(r.flops) - 0.005  # half a point: within the noise
        else:
            a = acc(r.flops)
        results[r.key] = [sc.Result(r.key, s, a + 0.002 * (-1) ** s, 2000, 1.0, f"scale/{i}")
                          for i, s in enumerate((0, 1))]
    rep = build(base, rungs, results, seeds=2, resamples=200, holdout=1)
    assert "width" in rep.fits
    by = {v.preset.rung.preset: v for v in rep.versus}
    xs, s = by["mobilevit_xs"], by["mobilevit_s"]
    nearest = min(abs(r.flops / xs.preset.rung.flops - 1) for r in rungs if r.family == "width")
    assert (xs.by == "law") == (nearest > 0.15)
    assert xs.verdict == "win" and xs.lo > 0  # the family beats the preset by more than the noise
    assert s.verdict == "tie" and s.lo < 0 < s.hi
    assert "win" in xs.shown() and "pts" in xs.shown()


def test_compound_search_trains_the_grid_at_phi_1_and_takes_its_most_accurate_bases(base, tmp_path):
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    r = scale("--config", base, *FAST, "--family", "compound", "--compound", "search", "--multipliers", "1,2,4,8",
              "--seeds", "1", "--storage", url, "--name", "grid", "--json")
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    grid = out["compound_grid"]
    assert len(grid) >= 2 and all(p["seeds"] == 1 for p in grid)
    for p in grid:  # every grid point is a phi = 1 network: alpha * beta^2 * gamma^2 = 2
        a, b, g = p["factors"]
        assert a * b * b * g * g == pytest.approx(2.0) and a >= 1
    best = max(grid, key=lambda p: (p["mean_accuracy"], -p["flops"]))
    (at_two,) = [p for p in out["families"]["compound"]["ladder"] if p["multiplier"] == 2.0]
    assert at_two["factors"] == pytest.approx(best["factors"])  # the ladder uses the chosen bases
    assert "compound-grid" not in out["families"]  # the grid is not a family with a law
    assert "the grid at phi = 1 chose" in r.stderr


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_job_taken_at_the_same_moment_by_a_lower_numbered_trial_gives_way(tmp_path):
    # two workers take the same job; the one with the higher trial number checked before the
    # other had claimed it: it trains one epoch, sees the claim, and stops as a duplicate
    from mvsearch.search.trainings import TrainingEvents, TrainingOptions

    base = sc.Base("config", "tiny.yaml", ArchConfig.from_yaml(TINY), 64)
    proxy = ProxySettings(data="synthetic", resolution=32, epochs=2, train_samples=64, val_samples=32)
    (rung,) = sc.plan(base, [("width", {})], proxy, multipliers=[1.0])
    other: list = []

    class ClaimNow(TrainingEvents):
        def trial_start(self, ref, planned, seed):
            other[0].set_user_attr("point", planned.key)  # the other worker claims it now
            other[0].set_user_attr("seed", seed)

    st = sc.ScaleStudy(base, [rung], proxy, TrainingOptions(name="dup", storage=f"sqlite:///{tmp_path / 'd.db'}",
                                                            seeds=1, threads=1), ClaimNow())
    st.prepare()
    st.open()
    other.append(st.study.ask())  # trial 0: the other worker's, not yet claimed
    mine = st.study.ask()  # trial 1
    with pytest.raises(optuna.TrialPruned):
        st._train(mine, rung, 0)
    rec = TrialRecord.from_user_attrs(st.study.get_trials()[1].user_attrs)
    assert rec.error.startswith("a duplicate of scale/0") and len(rec.accuracy_curve) == 1  # one epoch, not two
