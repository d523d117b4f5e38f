"""``mvsearch export``: the standalone module, the YAML, the ONNX graph, trial choice and every error.

The studies here are real Optuna SQLite studies whose trials carry the user attributes of
``mvsearch.search.record.TrialRecord`` (params and FLOPs counted by ``mvsearch.cost``), including PRUNED and FAIL
trials and a trial with saved proxy weights (stem stride 1, 10 classes, as a proxy trains them).
"""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner

from mvsearch import __version__
from mvsearch.arch.config import ArchConfig, MV2Stage, ViTStage, load_arch
from mvsearch.arch.presets import get_preset
from mvsearch.cli.main import main
from mvsearch.arch.presets import PAPER_PARAMS
from mvsearch.cost.traced import count, fvcore_flops
from mvsearch.core.errors import ExportError, MvsearchError
from mvsearch.model.onnx import export_onnx, onnx_max_diff
from mvsearch.export.writer import from_preset, select, write
from mvsearch.model.network import build_model
from mvsearch.search.record import ATTR_FIELDS
from mvsearch.search.storage import open_search

optuna.logging.set_verbosity(optuna.logging.WARNING)
REPO = Path(__file__).resolve().parents[1]
# a resolution whose maps (10x9, 5x5, 3x3 at layer3..5) are not multiples of the patches below,
# so every MobileViT block resizes (bilinear interpolate) before unfolding and after folding
RES = (80, 72)


def tiny_arch(width: int, num_classes: int = 12, stem_stride: int = 2) -> ArchConfig:
    """A small MobileViT with non-square patches (2x1, 1x2) and uneven heads."""
    def vit(c: int, d: int, patch: tuple[int, int], heads: int) -> ViTStage:
        return ViTStage(channels=c, dim=d, depth=1, ffn_dim=2 * d, heads=heads, patch=patch, kernel=3)
    return ArchConfig(
        stem=8, stem_stride=stem_stride, layer1=MV2Stage(8, 1), layer2=MV2Stage(width, 1),
        layer3=vit(width, 16, (2, 2), 2), layer4=vit(width, 24, (2, 1), 4), layer5=vit(width, 16, (1, 2), 1),
        expansion=2, last_channels=32, num_classes=num_classes,
    )


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial weights and BatchNorm statistics, as a trained model would have."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                        else 0.2 * torch.randn(t.shape, generator=g))
    return model.eval()


_COSTS: dict = {}


def _attrs(cfg: ArchConfig, **extra) -> dict:
    cost = _COSTS.get(cfg) or _COSTS.setdefault(cfg, count(cfg, RES, thop=False))
    ua = {"arch": cfg.to_dict(), "params": cost.params, "flops": cost.flops, "thop_macs": None,
          "activations": cost.activations, "resolution": list(RES), "tier": "small", "baseline": False,
          "preset": None, "over_budget": False, "accuracy_curve": [], "images_per_s": 1000.0, "wall_s": 3.0,
          "seed": 0, "data": "synthetic", "proxy": {"epochs": 2, "resolution": 32},
          "mvsearch_version": __version__, "proxy_arch": cfg.with_num_classes(10).to_dict()}
    ua.update(extra)
    assert set(ua) <= set(ATTR_FIELDS)
    return ua


def _trial(study, state, ua, value=None, curve=None):
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState[state], value=value, user_attrs=ua,
        intermediate_values=curve if curve is not None else ({1: value / 2, 2: value} if value else {})))


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    """A study: 0 small+weights, 1 mid (most accurate), 2 big (dominated), 3 PRUNED, 4 FAIL,
    5 over budget, 6 baseline (dominated)."""
    root = tmp_path_factory.mktemp("study")
    url = f"sqlite:///{root / 'tiny.db'}"
    study = optuna.create_study(study_name="tiny", storage=url, direction="maximize")
    small, mid, big = tiny_arch(8), tiny_arch(16), tiny_arch(24)
    proxy = dataclasses.replace(small, stem_stride=1, num_classes=10)
    (root / "weights").mkdir()
    torch.manual_seed(0)
    weights = randomised(build_model(proxy), seed=1).state_dict()
    torch.save(weights, root / "weights" / "trial0.pt")
    # a relative weights path, found beside the database (the cwd of the tests is elsewhere)
    _trial(study, "COMPLETE", _attrs(small, weights="weights/trial0.pt", proxy_arch=proxy.to_dict()), 0.60)
    _trial(study, "COMPLETE", _attrs(mid), 0.70)
    _trial(study, "COMPLETE", _attrs(big), 0.65)
    _trial(study, "PRUNED", _attrs(mid), curve={1: 0.31, 2: 0.35})
    _trial(study, "FAIL", _attrs(small))
    _trial(study, "FAIL", _attrs(big, over_budget=True))
    _trial(study, "COMPLETE", _attrs(big, baseline=True, preset="mobilevit_xxs", tier=None), 0.55)
    return {"url": url, "root": root, "cfgs": {0: small, 1: mid, 2: big}, "proxy": proxy, "weights": weights}


runner = CliRunner()


def cli(*args):
    return runner.invoke(main, ["export", *map(str, args)])


def export(study_db, *args):
    return cli("--storage", study_db["url"], *args)


def assert_one_line_error(r, *words):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


# the child process: no mvsearch anywhere (not the repo, not the editable install's finder)
_ISOLATED = textwrap.dedent("""
    import importlib.util, json, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
    # the checkout leaves the path, a virtual environment inside it (.venv: torch) stays
    sys.path[:] = [p for p in sys.path if "editable" not in p
                   and (not p.startswith({repo!r}) or "site-packages" in p)]
    sys.path_importer_cache.clear()
    assert importlib.util.find_spec("mvsearch") is None, "mvsearch is still importable"
    sys.path.insert(0, {out!r})
    import torch
    from {name} import build_model, PROVENANCE
    {body}
    assert not [m for m in sys.modules if m.split(".")[0] == "mvsearch"]
""")


def run_isolated(out: Path, name: str, body: str) -> str:
    code = _ISOLATED.format(repo=str(REPO), out=str(out), name=name, body=textwrap.dedent(body).strip())
    r = subprocess.run([sys.executable, "-I", "-c", code], cwd=out, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---------------------------------------------------------------------- the standalone .py
def test_py_imports_without_mvsearch_and_matches_the_record(study_db, tmp_path):
    out = tmp_path / "models"
    r = export(study_db, "--trial", 1, "--format", "py", "-o", out)
    assert r.exit_code == 0, r.output
    path = out / "tiny_trial1.py"
    assert sorted(p.name for p in out.iterdir()) == ["tiny_trial1.py"]
    # mvsearch's model with known weights; the standalone one loads the same state_dict
    ref = randomised(build_model(study_db["cfgs"][1]), seed=5)
    torch.save(ref.state_dict(), tmp_path / "state.pt")
    x = torch.randn(2, 3, *RES, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    stdout = run_isolated(out, "tiny_trial1", f"""
        model = build_model(weights={str(tmp_path / 'state.pt')!r}).eval()
        with torch.no_grad():
            torch.save(model(torch.load({str(tmp_path / 'x.pt')!r})), {str(tmp_path / 'y.pt')!r})
        print(json.dumps({{"params": sum(p.numel() for p in model.parameters()),
                           "keys": list(model.state_dict()), "trial": PROVENANCE["trial"]}}))
        import runpy
        runpy.run_path({str(path)!r}, run_name="__main__")  # `python tiny_trial1.py` prints its size
    """)
    first, main_line = stdout.strip().splitlines()
    assert main_line.startswith("MobileViT: ") and "-> (1, 12)" in main_line
    got = json.loads(first)
    rec = next(r for r in open_search("tiny", study_db["url"]).records() if r.number == 1)
    assert got["params"] == rec.params and got["trial"] == "1"  # the trial as `--trial` names it
    assert got["keys"] == list(ref.state_dict())
    with torch.no_grad():
        assert torch.allclose(torch.load(tmp_path / "y.pt"), ref(x), atol=1e-6, rtol=0)
    # fvcore FLOPs of the standalone model (imported here, built without mvsearch's classes)
    mod = load_module(path)
    twin = mod.build_model()
    assert type(twin).__module__ == mod.__name__
    assert fvcore_flops(twin, RES) == rec.flops


def test_py_is_readable_literals_and_provenance(study_db, tmp_path):
    r = export(study_db, "--trial", 1, "-o", tmp_path)
    assert r.exit_code == 0, r.output
    src = (tmp_path / "tiny_trial1.py").read_text()
    tree = ast.parse(src)
    doc = ast.get_docstring(tree)
    for text in ("study:", "tiny", "trial:", "1 (COMPLETE)", "0.7000", "params:", "FLOPs:", __version__):
        assert text in doc, text
    imports = {n.module if isinstance(n, ast.ImportFrom) else a.name
               for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert {m.split(".")[0] for m in imports} <= {"__future__", "math", "dataclasses", "pathlib", "torch"}
    cfg = study_db["cfgs"][1]
    assert "layer4=ViTStage(channels=16, dim=24, depth=1, ffn_dim=48, heads=4, patch=(2, 1), kernel=3)" in src
    mod = load_module(tmp_path / "tiny_trial1.py")
    assert dataclasses.asdict(mod.ARCH) == dataclasses.asdict(cfg)
    assert mod.RESOLUTION == RES and mod.WEIGHTS is None


def test_py_with_weights_keeps_the_weights_classifier_and_outputs(study_db, tmp_path):
    r = export(study_db, "--trial", 0, "--weights", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_trial0.pt", "tiny_trial0.py"]
    # the rule: the classifier follows the weights (10 classes), the rest the deployed arch
    assert "12" in r.stderr and "10 outputs" in r.stderr and "stem_stride=1" in r.stderr
    expected_cfg = study_db["cfgs"][0].with_num_classes(10)
    ref = build_model(expected_cfg).eval()
    ref.load_state_dict(study_db["weights"])
    x = torch.randn(1, 3, *RES, generator=torch.Generator().manual_seed(3))
    torch.save(x, tmp_path / "x.npt")
    stdout = run_isolated(tmp_path, "tiny_trial0", f"""
        model = build_model().eval()  # pretrained by default: the .pt beside the module
        with torch.no_grad():
            y = model(torch.load({str(tmp_path / 'x.npt')!r}))
        print(json.dumps(y.tolist()))
    """)
    with torch.no_grad():
        assert torch.allclose(torch.tensor(json.loads(stdout)), ref(x), atol=1e-5, rtol=0)


def test_py_source_is_safe_from_strings_in_the_study(tmp_path):
    # every string a study holds can be hostile: the tier, the data spec, the version (a study's
    # name is checked where it enters: a name like the payload is refused)
    payload = 'x"""\nimport os; os.system("touch PWNED")  # \'\\'
    url = f"sqlite:///{tmp_path / 'evil.db'}"
    st = optuna.create_study(study_name="evil", storage=url, direction="maximize")
    _trial(st, "COMPLETE", _attrs(tiny_arch(8), tier=payload, data=payload, mvsearch_version=payload), 0.5)
    out = tmp_path / "out"
    refused = cli("--storage", url, "--study", payload, "--best", "-o", out)
    assert refused.exit_code == 2 and "not a valid study name" in refused.output and not out.exists()
    r = cli("--storage", url, "--study", "evil", "--best", "-o", out)
    assert r.exit_code == 0, r.output
    (py,) = out.glob("*.py")
    assert py.name.isascii() and py.stem.isidentifier()
    src = py.read_text()
    assert payload not in ast.get_docstring(ast.parse(src))
    stdout = run_isolated(out, py.stem, "print(json.dumps([PROVENANCE['data'], PROVENANCE['tier']]))")
    assert json.loads(stdout) == [payload, payload]  # kept exactly, as inert data
    assert not (out / "PWNED").exists() and not Path("PWNED").exists()


def test_generated_module_tracks_model_source():
    # single source: the blocks are read from mvsearch.model at export time, never a hand copy
    import inspect

    from mvsearch.model import network as model_src
    from mvsearch.export.standalone import generate

    prov = {"study": None, "trial": None, "resolution": (64, 64), "num_classes": 10, "exported_by": "x"}
    src = generate(tiny_arch(8), prov, "m", None)
    for cls in (model_src.MobileViTBlock, model_src.Attention, model_src.MV2Block, model_src.MobileViT):
        assert inspect.getsource(cls) in src


def test_a_generated_module_that_drifts_from_the_model_is_caught():
    # the export runs the generated source and compares it with mvsearch's model before writing
    from mvsearch.export.standalone import generate
    from mvsearch.export.writer import _check_standalone

    cfg = tiny_arch(8)
    model = randomised(build_model(cfg), seed=4)
    prov = {"study": None, "trial": None, "resolution": RES, "num_classes": 12, "exported_by": "x"}
    src = generate(cfg, prov, "m", None)
    _check_standalone(src, "m", model, RES)  # the real source passes
    with pytest.raises(ExportError, match="outputs differ"):
        _check_standalone(src.replace("nn.SiLU()", "nn.ReLU()"), "m", model, RES)
    with pytest.raises(ExportError, match="differs from mvsearch"):
        _check_standalone(src.replace("self.conv_local", "self.local"), "m", model, RES)


# ---------------------------------------------------------------------- YAML
def test_yaml_round_trips_and_count_accepts_it(study_db, tmp_path):
    r = export(study_db, "--trial", 2, "--format", "yaml", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    path = tmp_path / "tiny_trial2.yaml"
    assert load_arch(path) == study_db["cfgs"][2]
    rec = next(r for r in open_search("tiny", study_db["url"]).records() if r.number == 2)
    c = runner.invoke(main, ["count", "--config", str(path), "--resolution", "80x72", "--json"])
    assert c.exit_code == 0, c.output
    got = json.loads(c.stdout)
    assert (got["params"], got["flops"]) == (rec.params, rec.flops)


def test_yaml_retrains_with_train_config_and_the_py_loads_those_weights(study_db, tmp_path):
    # the README's loop: export a found model, retrain it longer, use the weights in the .py
    r = export(study_db, "--trial", 1, "--format", "py,yaml", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    t = runner.invoke(main, ["train", "--config", str(tmp_path / "tiny_trial1.yaml"),
                             "--data", "synthetic:classes=12,samples=96,size=32", "--epochs", "1",
                             "--resolution", "32", "--train-samples", "48", "--val-samples", "24",
                             "--batch-size", "16", "--threads", "1", "--save-weights", str(tmp_path / "w.pt"),
                             "--json"])
    assert t.exit_code == 0, t.output
    assert json.loads(t.stdout)["arch"] == study_db["cfgs"][1].to_dict()
    mod = load_module(tmp_path / "tiny_trial1.py")
    model = mod.build_model(weights=tmp_path / "w.pt")  # strict load: every key and shape fits
    trained = torch.load(tmp_path / "w.pt", weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())


# ---------------------------------------------------------------------- ONNX
def test_onnx_opset_dynamic_batch_and_onnxruntime_parity(study_db, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    # trial 0 with its weights: the .pt written beside gives an independent torch reference
    r = export(study_db, "--trial", 0, "--weights", "--format", "onnx", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_trial0.onnx", "tiny_trial0.pt"]
    path = tmp_path / "tiny_trial0.onnx"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, *RES]
    assert "Resize" in {n.op_type for n in proto.graph.node}  # the interpolation path is in the graph
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["mvsearch.provenance"])["trial"] == "0"
    ref = build_model(study_db["cfgs"][0].with_num_classes(10)).eval()
    ref.load_state_dict(torch.load(tmp_path / "tiny_trial0.pt", weights_only=True))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(7)
    for b in (1, 3):
        x = torch.randn(b, 3, *RES, generator=g)
        with torch.no_grad():
            want = ref(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        assert got.shape == (b, 10)
        assert abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("exporter,opset", [("torchscript", 17), ("dynamo", 18)])
def test_export_onnx_contract_matches_torch_within_1e_4(tmp_path, exporter, opset):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = randomised(build_model(tiny_arch(16, num_classes=5)), seed=2)
    model.train()  # export must use eval mode and give the flags back
    path = export_onnx(model, tmp_path / "m.onnx", RES, opset, exporter=exporter)
    assert model.training
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no external data file
    assert onnx_max_diff(model, path, RES, batches=(1, 2, 5)) <= 1e-4


def test_export_onnx_rejects_a_low_opset(tmp_path):
    with pytest.raises(ExportError, match="opset"):
        export_onnx(build_model(tiny_arch(8)), tmp_path / "m.onnx", 64, 13)


# ---------------------------------------------------------------------- presets, all formats
def test_preset_exports_all_formats_without_any_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no studies/ here
    r = cli("--preset", "mobilevit_xxs", "--format", "all", "--resolution", 128, "-o", "models")
    assert r.exit_code == 0, r.output
    out = tmp_path / "models"
    assert sorted(p.name for p in out.iterdir()) == ["mobilevit_xxs.onnx", "mobilevit_xxs.py", "mobilevit_xxs.yaml"]
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o666 & ~umask}  # not mkstemp's 0600
    assert load_arch(out / "mobilevit_xxs.yaml") == get_preset("mobilevit_xxs")
    mod = load_module(out / "mobilevit_xxs.py")
    model = mod.build_model()
    assert sum(p.numel() for p in model.parameters()) == PAPER_PARAMS["mobilevit_xxs"]  # the reference
    assert mod.RESOLUTION == (128, 128)
    assert fvcore_flops(model, 128) == count(get_preset("mobilevit_xxs"), 128, thop=False).flops
    assert "max |diff|" in r.output


# ---------------------------------------------------------------------- choosing a trial
def test_best_and_pareto_rank_pick_the_documented_trials(study_db):
    st = open_search("tiny", study_db["url"])
    assert select(st, best=True).number == 1
    # 2 and the baseline 6 are dominated by 1; 1 = most accurate, 2 = the cheapest point
    assert select(st, pareto_rank=1).number == 1 and select(st, pareto_rank=2).number == 0
    with pytest.raises(ExportError, match="2 Pareto-optimal"):
        select(st, pareto_rank=3)


def test_best_breaks_accuracy_ties_by_fewer_flops(tmp_path):
    url = f"sqlite:///{tmp_path / 'ties.db'}"
    st = optuna.create_study(study_name="ties", storage=url, direction="maximize")
    _trial(st, "COMPLETE", _attrs(tiny_arch(24)), 0.5)  # trial 0: costlier
    _trial(st, "COMPLETE", _attrs(tiny_arch(8)), 0.5)  # trial 1: as accurate, cheaper
    _trial(st, "PRUNED", _attrs(tiny_arch(16)), curve={1: 0.9})  # a pruned trial never wins
    assert select(open_search("ties", url), best=True).number == 1


def test_pareto_rank_via_cli(study_db, tmp_path):
    r = export(study_db, "--pareto-rank", 2, "--format", "yaml", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert "trial 0" in r.output and (tmp_path / "tiny_trial0.yaml").exists()


def test_allow_incomplete_exports_a_pruned_trial_and_says_so(study_db, tmp_path):
    r = export(study_db, "--trial", 3, "--allow-incomplete", "--format", "yaml", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert "PRUNED" in r.stderr and "epoch 2" in r.stderr
    assert load_arch(tmp_path / "tiny_trial3.yaml") == study_db["cfgs"][1]


# ---------------------------------------------------------------------- errors: one line, exit 2, nothing left
@pytest.mark.parametrize("args,words", [
    (["--study", "nope", "--trial", 1], ["no study named 'nope'"]),
    (["--trial", 99], ["no trial 99"]),
    (["--trial", 3], ["PRUNED", "--allow-incomplete"]),
    (["--trial", 4], ["FAIL", "--allow-incomplete"]),
    (["--trial", 5], ["over budget", "--allow-incomplete"]),
    (["--trial", 1, "--weights"], ["saved no weights", "--save-weights"]),
    (["--trial", 0, "--weights", "--num-classes", 7], ["10-class", "--num-classes"]),
    (["--pareto-rank", 9], ["--pareto-rank"]),
    (["--best", "--trial", 1], ["exactly one"]),
    (["--trial", 1, "--format", "pdf"], ["unknown format 'pdf'"]),
    (["--trial", 1, "--name", "no-dash"], ["--name"]),
    (["--trial", 1, "--resolution", "16"], ["patch"]),
])
def test_errors_are_one_line_and_leave_nothing(study_db, tmp_path, args, words):
    out = tmp_path / "new" / "models"
    r = export(study_db, *args, "-o", out)
    assert_one_line_error(r, *words)
    assert not (tmp_path / "new").exists()


def test_no_study_database(tmp_path):
    r = cli("--storage", f"sqlite:///{tmp_path / 'missing.db'}", "--best", "-o", tmp_path / "o")
    assert_one_line_error(r, "no study database")
    assert not (tmp_path / "o").exists()


def test_missing_output_option(study_db):
    assert_one_line_error(export(study_db, "--best"), "-o DIR")


def test_existing_file_is_refused_unless_force(study_db, tmp_path):
    (tmp_path / "tiny_trial1.yaml").write_text("mine\n")
    r = export(study_db, "--trial", 1, "--format", "py,yaml", "-o", tmp_path)
    assert_one_line_error(r, "already exists", "--force")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_trial1.yaml"]  # the .py not written either
    assert (tmp_path / "tiny_trial1.yaml").read_text() == "mine\n"
    r = export(study_db, "--trial", 1, "--format", "py,yaml", "--force", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert load_arch(tmp_path / "tiny_trial1.yaml") == study_db["cfgs"][1]


def test_unwritable_directory(study_db, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    r = export(study_db, "--trial", 1, "-o", blocker / "models")
    assert_one_line_error(r, "not a directory")
    if os.geteuid() != 0:  # root writes anywhere; the permission case only means something otherwise
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        assert_one_line_error(export(study_db, "--trial", 1, "-o", ro), "permission denied")
        assert list(ro.iterdir()) == []


def test_missing_or_bad_weights_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    st = optuna.create_study(study_name="w", storage=url, direction="maximize")
    _trial(st, "COMPLETE", _attrs(tiny_arch(8), weights=str(tmp_path / "gone.pt")), 0.5)
    r = cli("--storage", url, "--best", "--weights", "-o", tmp_path / "o")
    assert_one_line_error(r, "gone.pt", "missing")
    torch.save([1, 2, 3], tmp_path / "gone.pt")  # readable with weights_only, but no state_dict
    r = cli("--storage", url, "--best", "--weights", "-o", tmp_path / "o")
    assert_one_line_error(r, "not a state_dict")
    assert not (tmp_path / "o").exists()


def test_a_late_failure_leaves_no_partial_files(study_db, tmp_path, monkeypatch):
    # fault injection: the ONNX step (after the .py and .yaml are done) fails
    import mvsearch.export.writer as writer

    def broken(*a, **k):
        raise ExportError("ONNX export failed: injected")

    monkeypatch.setattr(writer, "export_onnx", broken)
    out = tmp_path / "m"
    r = export(study_db, "--trial", 1, "--format", "all", "-o", out)
    assert_one_line_error(r, "injected")
    assert not out.exists()


# ---------------------------------------------------------------------- end to end, a real process
def test_cli_subprocess_best_all_formats(study_db, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "mvsearch", "export", "--storage", study_db["url"], "--best",
         "--format", "all", "-o", str(tmp_path / "models")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == ["tiny_trial1.onnx", "tiny_trial1.py", "tiny_trial1.yaml"]
    assert "trial 1" in r.stdout and "max |diff|" in r.stdout


def test_write_api_from_preset_with_other_classes(tmp_path):
    res = write(from_preset("mobilevit_xxs", num_classes=10, resolution=64), tmp_path, ("py",))
    assert [k for k, _ in res.files] == ["py"]
    assert res.params == count(get_preset("mobilevit_xxs", 10), 64, thop=False).params


def test_a_late_failure_with_force_leaves_the_old_files_byte_identical(tmp_path, monkeypatch):
    import mvsearch.export.writer as writer

    def broken(*a, **k):
        raise ExportError("ONNX export failed: injected")

    old = {"m.py": b"# the old module\n", "m.yaml": b"# the old yaml\n"}
    for name, data in old.items():
        (tmp_path / name).write_bytes(data)
    monkeypatch.setattr(writer, "export_onnx", broken)
    with pytest.raises(ExportError, match="injected"):
        write(from_preset("mobilevit_xxs", 10, 64, stem="m"), tmp_path, ("py", "yaml", "onnx"), force=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == old  # no temporary file left either


def test_force_never_replaces_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "m.py")
    with pytest.raises(MvsearchError, match="not a regular file"):
        write(from_preset("mobilevit_xxs", 10, 64, stem="m"), tmp_path, ("py",), force=True)
    assert stat.S_ISFIFO((tmp_path / "m.py").lstat().st_mode) and [p.name for p in tmp_path.iterdir()] == ["m.py"]
