"""mvsearch/model/bn_silu.py: BatchNorm + SiLU that saves one tensor for backward, not two.

The lean unit must compute what the plain modules compute (the same output, running statistics and
``num_batches_tracked``; gradients equal to rounding), save one activation-sized tensor less per
unit (counted with autograd's saved-tensor hooks), fall back to the plain path where it does not
apply, and leave a trained model exactly as it came (plain modules, deep-copyable).
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mvsearch.arch.presets import get_preset
from mvsearch.model.bn_silu import lean_bn_silu, plain_bn_silu
from mvsearch.model.network import ConvBNAct, build_model


def unit_stack(momentum: float | None = 0.1) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(ConvBNAct(3, 8, 3), ConvBNAct(8, 8, 3, groups=8), ConvBNAct(8, 4, 1, act=False))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return net


def run(net: nn.Module, x: torch.Tensor, steps: int = 2) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    outs = []
    for i in range(steps):
        torch.manual_seed(i)  # dropout draws alike in both networks
        net.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        y = net(xi)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        outs += [y.detach(), xi.grad]
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    return outs, {**grads, **{n: b.clone() for n, b in net.named_buffers()}}


def assert_as_close_as_plain(plain: dict, lean: dict, ref: dict) -> None:
    """Each float32 result of the lean run is as close to the float64 reference as the plain run's."""
    assert plain.keys() == lean.keys() == ref.keys()
    for k in ref:
        if not ref[k].dtype.is_floating_point:
            assert torch.equal(plain[k], lean[k]) and torch.equal(plain[k].to(ref[k].dtype), ref[k]), k
            continue
        err_plain = (plain[k].double() - ref[k]).abs().max().item()
        err_lean = (lean[k].double() - ref[k]).abs().max().item()
        assert err_lean <= 2 * err_plain + 1e-6 * ref[k].abs().max().item(), (k, err_lean, err_plain)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_lean_units_compute_what_the_plain_modules_compute(channels_last, momentum):
    x = torch.randn(6, 3, 12, 12)
    plain, lean = unit_stack(momentum), unit_stack(momentum)
    ref = copy.deepcopy(plain).double()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        plain.to(memory_format=torch.channels_last)
        lean.to(memory_format=torch.channels_last)
    assert lean_bn_silu(lean) == 2  # the third unit has no SiLU: left alone
    (p_outs, p_state), (l_outs, l_state), (r_outs, r_state) = run(plain, x), run(lean, x), run(ref, x.double())
    for a, b in zip(p_outs[0::2], l_outs[0::2]):
        assert torch.equal(a, b)  # the forward calls the same kernels
    for k in p_state:  # the running statistics are the forward's: identical
        if "running" in k or "num_batches" in k:
            assert torch.equal(p_state[k], l_state[k]), k
    # the gradients: the recomputed BatchNorm output may round differently, but the lean run is as
    # close to a float64 run as the plain one
    assert_as_close_as_plain(dict(enumerate(p_outs[1::2])), dict(enumerate(l_outs[1::2])),
                             dict(enumerate(r_outs[1::2])))
    assert_as_close_as_plain(p_state, l_state, r_state)


def saved_bytes(net: nn.Module, x: torch.Tensor) -> int:
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x.requires_grad_(True)).sum()
    return sum(seen.values())


def test_a_lean_unit_saves_one_activation_less():
    x = torch.randn(4, 3, 16, 16)
    plain, lean = unit_stack(), unit_stack()
    lean_bn_silu(lean)
    activation = 4 * 8 * 16 * 16 * 4  # one [4, 8, 16, 16] float32 tensor: BatchNorm's output, in 2 units
    # (beside it, per unit, the plain BatchNorm keeps its running mean and var, the lean one its bias: 8 floats)
    assert saved_bytes(plain, x.clone()) - saved_bytes(lean, x.clone()) == 2 * activation + 2 * 8 * 4


def test_the_plain_path_runs_in_eval_mode_without_grad_and_off_cpu_float32():
    x = torch.randn(4, 3, 10, 10)
    plain, lean = unit_stack(), unit_stack()
    lean_bn_silu(lean)
    plain.eval(), lean.eval()
    assert torch.equal(plain(x), lean(x))
    plain.train(), lean.train()
    with torch.no_grad():
        assert torch.equal(plain(x), lean(x))
    assert saved_bytes(unit_stack().double(), x.double()) == saved_bytes(lean.double(), x.double())


def test_a_whole_mobilevit_trains_alike_and_leaves_plain():
    torch.manual_seed(0)
    plain = build_model(get_preset("mobilevit_xxs", 10))
    lean, ref = copy.deepcopy(plain), copy.deepcopy(plain).double()
    n = lean_bn_silu(lean)
    assert n == sum(isinstance(m, ConvBNAct) and len(m) == 3 for m in lean.modules()) and n > 20
    x = torch.randn(2, 3, 64, 64)
    (p_outs, p_state), (l_outs, l_state) = run(plain, x, steps=1), run(lean, x, steps=1)
    r_outs, r_state = run(ref, x.double(), steps=1)
    assert torch.equal(p_outs[0], l_outs[0])
    assert_as_close_as_plain({"x": p_outs[1], **p_state}, {"x": l_outs[1], **l_state}, {"x": r_outs[1], **r_state})
    assert plain_bn_silu(lean) == n and plain_bn_silu(lean) == 0
    assert not any("forward" in m.__dict__ for m in lean.modules())
    copy.deepcopy(lean)


def test_train_uses_lean_units_on_cpu_and_hands_the_model_back_plain():
    from mvsearch.data import load_data, proxy_split
    from mvsearch.proxy.trainer import TrainConfig, train

    data = load_data("synthetic:classes=4,samples=128", resolution=32)
    split = proxy_split(data, train_samples=64, val_samples=32, seed=0)
    results = {}
    for lean in (True, False):
        torch.manual_seed(0)
        model = build_model(get_preset("mobilevit_xxs", 4))
        calls = []
        hook = torch.autograd.graph.saved_tensors_hooks(lambda t: calls.append(1) or t, lambda t: t)
        with hook:
            res = train(model, split, TrainConfig(epochs=1, batch_size=16, device="cpu", threads=1, lean_bn=lean,
                                                  bn_calibration=0))
        results[lean] = (res, len(calls))
        assert not any("forward" in m.__dict__ for m in model.modules())
    # fewer saved tensors with lean units; the same training to rounding
    assert results[True][1] < results[False][1]
    assert results[True][0].epochs[0].train_loss == pytest.approx(results[False][0].epochs[0].train_loss, rel=1e-4)
    with pytest.raises(Exception, match="lean_bn"):
        TrainConfig(lean_bn="yes")
