"""The proxy trainer (augmentation, schedule, learning, determinism, callback, NaN) and `mvsearch train`."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mvsearch.arch.config import MV2Stage, ViTStage
from mvsearch.arch.presets import get_preset
from mvsearch.cli.main import main
from mvsearch.data import load_data, proxy_split
from mvsearch.core.errors import NonFiniteLossError, TrainError
from mvsearch.model.network import build_model
from mvsearch.core.runtime import cpu_threads
from mvsearch.proxy.augment import augment, crop_padding, to_float
from mvsearch.proxy.evaluate import recalibrate_bn
from mvsearch.proxy.trainer import EpochStats, TrainConfig, build_seeded, train, warmup_cosine
from tests.test_data import _npz, write_idx, write_imagefolder

RES = 32


def tiny_arch(num_classes: int = 4):
    """mobilevit_xxs shrunk to a few thousand parameters (same structure, depth 1)."""
    vit = ViTStage(channels=16, dim=16, depth=1, ffn_dim=32, heads=2)
    return dataclasses.replace(
        get_preset("mobilevit_xxs"), stem=8, stem_stride=1, layer1=MV2Stage(8, 1), layer2=MV2Stage(12, 1),
        layer3=vit, layer4=vit, layer5=vit, last_channels=32, num_classes=num_classes)


@pytest.fixture(scope="module")
def split():
    d = load_data("synthetic:classes=4,samples=256,size=16", resolution=RES)
    return proxy_split(d, train_samples=None, val_samples=64, seed=0)


def cfg(**kw) -> TrainConfig:
    # one thread: tiny ops on a shared 2-core machine spend more time in thread barriers than in maths
    base = dict(epochs=2, batch_size=32, lr=3e-3, warmup_epochs=0.5, device="cpu", eval_batch_size=64, threads=1)
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------------- batch augmentation
def test_to_float_scales_expands_grayscale_and_is_channels_last():
    x = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    f = to_float(x)
    assert f.shape == (2, 3, 4, 4) and f.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(f[:, 2], x[:, 0].float() / 255, atol=1e-7) and torch.equal(f[:, 0], f[:, 1])


def test_augment_without_padding_flips_exactly_the_chosen_images():
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = augment(x, 0, True, torch.Generator().manual_seed(0))
    ref = to_float(x).contiguous()
    same = [torch.equal(out[i], ref[i]) for i in range(64)]
    flipped = [torch.equal(out[i], ref[i].flip(-1)) for i in range(64)]
    assert all(s or f for s, f in zip(same, flipped))
    assert 10 < sum(flipped) < 54  # about half
    assert torch.equal(augment(x, 0, False, torch.Generator()), ref)


def test_augment_crops_are_windows_of_the_zero_padded_image():
    x = torch.randint(1, 256, (16, 1, 8, 8), dtype=torch.uint8)
    out = augment(x, 2, False, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(to_float(x).contiguous(), (2, 2, 2, 2))
    for i in range(16):
        windows = [padded[i, 0, a:a + 8, b:b + 8] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i, 0], w) for w in windows)
    assert (out == 0).any()  # some crop reached into the padding


def test_crop_padding_defaults_to_a_32nd_of_the_side_and_an_explicit_value_wins():
    assert crop_padding(TrainConfig(), 64) == 2 and crop_padding(TrainConfig(), 128) == 4
    assert crop_padding(TrainConfig(), 16) == 0  # tiny images: flips only
    assert crop_padding(TrainConfig(crop_padding=8), 64) == 8
    assert crop_padding(TrainConfig(crop_padding=0), 64) == 0


# ---------------------------------------------------------------------- learning-rate schedule
def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """The hand-written schedule warmup_cosine replaced: the reference its per-step lr must equal."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1.0 + math.cos(math.pi * min(1.0, t)))


def scheduled_lrs(total: int, warmup: int, peak: float) -> list[float]:
    """The lr each of ``total`` optimizer steps runs at under warmup_cosine (stepped as train() does)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    schedule = warmup_cosine(opt, total, warmup)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return lrs


@pytest.mark.parametrize("total, warmup", [(100, 10), (100, 0), (7, 7), (7, 1), (1, 1), (1, 0), (6, 3),
                                           (468, 47)])
def test_schedule_equals_the_warmup_cosine_formula_at_every_step(total, warmup):
    # torch's LinearLR/CosineAnnealingLR update the lr multiplicatively, so the two agree to
    # rounding (about 1e-13 relative after hundreds of steps), not bit for bit
    peak = 2e-3
    assert scheduled_lrs(total, warmup, peak) == pytest.approx([lr_at(s, total, warmup, peak)
                                                                for s in range(total)], rel=1e-12, abs=0)


def test_lr_warms_up_from_peak_over_warmup_then_decays_to_almost_zero():
    lrs = scheduled_lrs(100, 10, 1.0)
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and 0 < lrs[-1] < 0.01
    assert scheduled_lrs(10, 0, 1.0)[0] == 1.0  # no warmup: the first step is at the peak


@pytest.mark.parametrize("total, warmup", [(0, 0), (5, 6), (5, -1)])
def test_schedule_refuses_impossible_lengths(total, warmup):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="warmup_cosine"):
        warmup_cosine(opt, total, warmup)


def test_epoch_stats_report_the_lr_of_the_epochs_last_step(split):
    r = train(tiny_arch(), split, cfg(epochs=2))
    steps = 192 // 32
    expected = scheduled_lrs(2 * steps, round(0.5 * steps), 3e-3)
    assert [e.lr for e in r.epochs] == [expected[steps - 1], expected[-1]]


# ---------------------------------------------------------------------- training
def test_tiny_model_learns_the_synthetic_task(split):
    r = train(tiny_arch(), split, cfg(epochs=8, lr=5e-3))
    assert r.val_accuracy >= 0.6  # chance is 0.25
    assert r.epochs[-1].train_loss < r.epochs[0].train_loss
    assert len(r.epochs) == 8 and not r.stopped and r.images_per_s > 0 and r.wall_s > 0
    assert r.steps == 8 * (192 // 32) and r.train_samples == 192 and r.val_samples == 64


def test_every_parameter_is_updated(split):
    torch.manual_seed(0)
    model = build_model(tiny_arch())
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    train(model, split, cfg(epochs=1))
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v.detach(), before[k])]
    assert unchanged == []


def test_same_seed_same_result_on_cpu(split):
    a = train(tiny_arch(), split, cfg(seed=3))
    b = train(tiny_arch(), split, cfg(seed=3))
    c = train(tiny_arch(), split, cfg(seed=4))
    strip = lambda r: [(e.val_accuracy, e.val_loss, e.train_loss) for e in r.epochs]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_model_and_archconfig_paths_agree_and_weights_match(split):
    m1, m2 = build_seeded(tiny_arch(), 7), build_seeded(tiny_arch(), 7)
    a = train(m1, split, cfg(seed=7, epochs=1))
    b = train(tiny_arch(), split, cfg(seed=7, epochs=1))
    train(m2, split, cfg(seed=7, epochs=1))
    assert a.epochs[0].train_loss == b.epochs[0].train_loss
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_callers_rng_and_threads_are_left_alone(split):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    train(tiny_arch(), split, cfg(epochs=1, threads=threads + 1))
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads


def test_callback_sees_every_epoch_and_can_stop(split):
    seen: list[EpochStats] = []

    def cb(e):
        seen.append(e)
        return e.epoch == 2

    r = train(tiny_arch(), split, cfg(epochs=5), callback=cb)
    assert [e.epoch for e in seen] == [1, 2] and r.stopped and len(r.epochs) == 2
    assert 0.0 <= seen[0].val_accuracy <= 1.0 and seen[0].images_per_s > 0 and seen[0].val_loss > 0
    assert r.val_accuracy == seen[-1].val_accuracy


def test_epochs_before_the_last_are_judged_on_a_fixed_stratified_subset_and_the_last_on_all(split):
    from mvsearch.proxy.evaluate import evaluate

    seen: list[EpochStats] = []
    model = build_model(tiny_arch())
    r = train(model, split, cfg(epochs=3, epoch_val=16), callback=seen.append)
    assert [e.val_samples for e in seen] == [16, 16, len(split.val_y)] == [16, 16, 64]
    assert r.val_samples == 64
    # the last epoch's accuracy is the whole split's (BatchNorm as recalibrated before it)
    acc, _ = evaluate(model, split.val_x, split.val_y, device="cpu")
    assert r.val_accuracy == pytest.approx(acc)
    assert all(abs(e.val_accuracy * 16 - round(e.val_accuracy * 16)) < 1e-9 for e in seen[:2])  # k of 16
    # the subset is stratified: 4 of each of the 4 classes (16 images), the same for every seed
    from mvsearch.data.split import stratified

    pick = stratified(split.val_y, 16, torch.Generator().manual_seed(0))
    assert torch.bincount(split.val_y[pick], minlength=4).tolist() == [4, 4, 4, 4]
    seen0: list[EpochStats] = []
    train(tiny_arch(), split, cfg(epochs=2, epoch_val=0), callback=seen0.append)
    assert [e.val_samples for e in seen0] == [64, 64]  # 0: every epoch on all of it


def test_exceptions_from_the_callback_propagate_unchanged(split):
    optuna = pytest.importorskip("optuna")

    def cb(e):
        raise optuna.TrialPruned(f"pruned at {e.epoch}")

    with pytest.raises(optuna.TrialPruned, match="pruned at 1"):
        train(tiny_arch(), split, cfg(epochs=3), callback=cb)


def test_nan_loss_raises_a_dedicated_error(split):
    model = build_model(tiny_arch())
    with torch.no_grad():
        model.classifier[-1].weight.fill_(math.nan)
    with pytest.raises(NonFiniteLossError, match=r"training loss became nan at epoch 1, step 1; lower the learning rate"):
        train(model, split, cfg())


@pytest.mark.parametrize("kw,msg", [({"epochs": 0}, "epochs: must be a positive integer"),
                                    ({"lr": -1.0}, "lr: must be a finite number"),
                                    ({"label_smoothing": 1.0}, r"label_smoothing: must be in \[0, 1\)"),
                                    ({"device": "tpu"}, "device: must be auto, cpu or cuda"),
                                    ({"hold_memory": "yes"}, "hold_memory: must be true or false"),
                                    ({"epoch_val": -1}, "epoch_val: must be a non-negative integer")])
def test_bad_train_config_is_refused(kw, msg):
    with pytest.raises(TrainError, match=msg):
        cfg(**kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(split):
    with pytest.raises(TrainError, match="no CUDA GPU is available"):
        train(tiny_arch(), split, cfg(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_runs(split):
    r = train(tiny_arch(), split, cfg(device="cuda", compile=False))
    assert r.device.startswith("cuda") and 0 <= r.val_accuracy <= 1


# ---------------------------------------------------------------------- the CLI
runner = CliRunner()


@pytest.fixture
def tiny_yaml(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(tiny_arch().to_yaml())
    return p


def _train(*args):
    return runner.invoke(main, ["train", *args])


BASE = ["--data", "synthetic:classes=4,samples=128,size=16", "--resolution", "32", "--epochs", "1",
        "--batch-size", "32", "--val-samples", "32", "--train-samples", "all", "--device", "cpu", "--threads", "1"]


def test_cli_json_is_one_clean_object(tiny_yaml):
    r = _train("--config", str(tiny_yaml), *BASE, "--json", "--test")
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert {"val_accuracy", "val_loss", "epochs", "images_per_s", "wall_s", "test_accuracy"} <= obj.keys()
    assert len(obj["epochs"]) == 1 and obj["epochs"][0]["epoch"] == 1
    assert obj["num_classes"] == 4 and obj["proxy_arch"]["num_classes"] == 4
    assert obj["proxy_arch"]["stem_stride"] == 1 and obj["train_samples"] == 96
    assert not any(ord(ch) < 32 for ch in r.stdout.rstrip("\n"))  # no control characters at all
    assert r.stdout.count("\n") == 1


def test_cli_text_output_and_collapse_warning(tiny_yaml):
    r = _train("--config", str(tiny_yaml), *BASE)
    assert r.exit_code == 0, r.output
    assert "epoch 1/1  val_acc" in r.stdout and "val_accuracy" in r.stdout
    assert "warning: layer5: at input 32 with stem stride 1" in r.stderr  # 32 px: layer5 has N = 1
    assert "\x1b" not in r.output and "\r" not in r.output  # no progress bar off a terminal


def test_cli_saves_loadable_weights(tiny_yaml, tmp_path):
    w = tmp_path / "w.pt"
    r = _train("--config", str(tiny_yaml), *BASE, "--save-weights", str(w), "--json")
    assert r.exit_code == 0, r.output
    model = build_model(tiny_arch())
    model.load_state_dict(torch.load(w, weights_only=True))  # the proxy net (4 classes, stem stride 1)
    assert json.loads(r.stdout)["weights"] == str(w)


def _bad_inputs(tmp_path):
    write_imagefolder(tmp_path / "emptyclass")
    (tmp_path / "emptyclass" / "train" / "zebra").mkdir()
    write_idx(tmp_path / "corrupt", gz=False)
    f = tmp_path / "corrupt" / "train-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes()[:9])
    (tmp_path / "notes.txt").write_text("not data")
    x = np.zeros((4, 8, 8, 3), np.uint8)
    _npz(tmp_path / "ok.npz", x, np.zeros(4, int), x, np.zeros(4, int))
    return {
        "missing path": (f"idx:{tmp_path / 'nope'}", "no such file or folder"),
        "wrong format": (f"npz:{tmp_path / 'notes.txt'}", "corrupt or not a .npz file"),
        "wrong format (idx on a file)": (f"imagefolder:{tmp_path / 'ok.npz'}", "neither a folder nor a .tar.gz"),
        "corrupt file": (f"idx:{tmp_path / 'corrupt'}", "train-labels-idx1-ubyte': idx header says"),
        "empty class folder": (f"imagefolder:{tmp_path / 'emptyclass'}", "train/zebra: empty class folder"),
        "unknown dataset name": ("imagenet", "unknown dataset 'imagenet'"),
    }


def test_cli_bad_inputs_are_one_line_and_exit_2(tiny_yaml, tmp_path):
    for case, (spec, msg) in _bad_inputs(tmp_path).items():
        r = _train("--config", str(tiny_yaml), "--data", spec, "--resolution", "64", "--json")
        assert r.exit_code == 2, (case, r.output)
        assert r.stdout == "", case  # nothing half-printed
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], (case, r.stderr)
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args,msg", [
    ([], "pass exactly one of --preset NAME or --config FILE.yaml"),
    (["--preset", "mobilevit_xxs", "--config", "x.yaml"], "pass exactly one of"),
    (["--preset", "mobilevit_xxl"], "unknown preset 'mobilevit_xxl'"),
    (["--preset", "mobilevit_xxs", "--resolution", "8"], "patch must fit the feature map"),
    (["--preset", "mobilevit_xxs", "--save-weights", "/nonexistent/dir/w.pt"], "does not exist; create it first"),
    (["--preset", "mobilevit_xxs", "--epochs", "0"], "epochs: must be a positive integer"),
])
def test_cli_bad_options(args, msg):
    r = _train(*args, "--data", "synthetic")
    assert r.exit_code == 2 and msg in r.stderr, r.output


def test_cli_unknown_named_dataset_location_message(monkeypatch, tmp_path):
    from mvsearch.data import SYSTEM_DIRS

    monkeypatch.setitem(SYSTEM_DIRS, "fashion-mnist", ())
    monkeypatch.delenv("MVSEARCH_DATA", raising=False)
    r = _train("--preset", "mobilevit_xxs", "--data", "fashion-mnist", "--cache-dir", str(tmp_path))
    assert r.exit_code == 2 and "apt-get install dataset-fashion-mnist" in r.stderr


def test_cli_real_subprocess_json(tiny_yaml, tmp_path):
    env_args = [sys.executable, "-m", "mvsearch", "train", "--config", str(tiny_yaml), *BASE, "--json"]
    p = subprocess.run(env_args, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert 0.0 <= obj["val_accuracy"] <= 1.0 and obj["data"].startswith("synthetic")
    p = subprocess.run([sys.executable, "-m", "mvsearch", "train", "--preset", "mobilevit_xxs", "--data",
                        f"idx:{tmp_path / 'missing'}"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr


def test_bn_recalibration_sets_exact_statistics_and_changes_nothing_else():
    model = build_model(tiny_arch())
    bn = model.stem[1]
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # stale statistics, as after a short training
            m.running_mean.fill_(5.0)
            m.running_var.fill_(9.0)
    model.train()
    weights = {k: v.clone() for k, v in model.named_parameters()}
    x = (torch.rand(48, 3, RES, RES) * 255).to(torch.uint8)
    recalibrate_bn(model, x, batch_size=16, device=torch.device("cpu"))
    with torch.no_grad():  # what the stem's BN sees: the stem conv's output on the same images
        z = model.stem[0](to_float(x))
    # cumulative average of three equal batches = the mean over all 48 images
    assert torch.allclose(bn.running_mean, z.mean((0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.1 and model.training  # momentum and mode restored
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())


def test_short_training_evaluates_with_calibrated_statistics(split):
    """Validation in eval mode agrees with the BN-calibrated network, not the stale running averages."""
    cfg = TrainConfig(epochs=1, batch_size=32, lr=3e-3, warmup_epochs=0.0)
    res = train(tiny_arch(), split, cfg, hflip=False)
    stale = train(tiny_arch(), split, dataclasses.replace(cfg, bn_calibration=0), hflip=False)
    # identical training (same seed, calibration uses its own generator): same loss, different eval
    assert res.epochs[0].train_loss == stale.epochs[0].train_loss
    assert res.config["bn_calibration"] == 512 and stale.config["bn_calibration"] == 0
    with pytest.raises(TrainError, match="bn_calibration"):
        TrainConfig(bn_calibration=-1)
