"""What a MobileViT costs, measured on a built model: parameters, FLOPs, activations, per stage.

The model is traced by fvcore (:mod:`mvsearch.cost.analytic` gives the same numbers in closed form,
without building anything). FLOPs are fvcore's: **one multiply-add counts as one FLOP** (so
"FLOPs" here are MACs, the convention of the MobileViT paper, timm and pycls). fvcore skips
``aten::scaled_dot_product_attention`` silently; we register a handle that counts it exactly as the
two matmuls of explicit attention (Q·Kᵀ and A·V), so fused and explicit attention count the same.
thop's MACs are reported beside as a cross-check (thop counts by module hooks, with its own rules
for norms and activations, so it differs slightly). Counting runs in eval mode on a zero input of
batch 1 and leaves the model exactly as it found it (weights, buffers and train/eval flags).
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import asdict, dataclass
from math import prod
from typing import Any

import torch
from torch import nn

from mvsearch.arch.config import ArchConfig
from mvsearch.arch.geometry import check_resolution, parse_resolution
from mvsearch.core.runtime import eval_mode
from mvsearch.cost.bounds import check_cost
from mvsearch.model.network import Attention, MobileViT, build_model


@dataclass(frozen=True)
class StageCost:
    name: str  # top-level child of MobileViT: stem, layer1..layer5, conv_1x1_exp, classifier
    params: int
    flops: int


@dataclass(frozen=True)
class Cost:
    params: int  # trainable parameters
    flops: int  # fvcore FLOPs (1 multiply-add = 1 FLOP) at ``resolution``
    thop_macs: int | None  # thop's MACs, the cross-check (None when not asked for)
    activations: int  # fvcore activation count (outputs of convs, linears, matmuls, attention)
    resolution: tuple[int, int]  # input (H, W)
    stages: tuple[StageCost, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resolution"] = list(self.resolution)
        return d


def _sdpa_flops(inputs: list[Any], outputs: list[Any]) -> int:
    """aten::scaled_dot_product_attention: Q·Kᵀ (L·S·E) + A·V (L·S·Ev) per batch-head."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch = prod(q[:-2])
    return batch * q[-2] * k[-2] * q[-1] + batch * q[-2] * k[-2] * v[-1]


def _sdpa_activations(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    return prod(get_shape(outputs[0]))


_SDPA = "aten::scaled_dot_product_attention"


def _input(model: nn.Module, resolution: tuple[int, int]) -> torch.Tensor:
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.zeros(1, 3, *resolution, device=device, dtype=dtype)


def _quiet(analysis):
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis


def _analyses(model: nn.Module, resolution: tuple[int, int]):
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

    x = _input(model, resolution)
    flops = _quiet(FlopCountAnalysis(model, x).set_op_handle(_SDPA, _sdpa_flops))
    acts = _quiet(ActivationCountAnalysis(model, x).set_op_handle(_SDPA, _sdpa_activations))
    return flops, acts


def fvcore_flops(model: nn.Module, resolution: Any = 256) -> int:
    """Total fvcore FLOPs of ``model`` at ``resolution`` (batch 1)."""
    from fvcore.nn import FlopCountAnalysis

    res = parse_resolution(resolution)
    with eval_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fca = _quiet(FlopCountAnalysis(model, _input(model, res)).set_op_handle(_SDPA, _sdpa_flops))
        return int(fca.total())


def _thop_attention(m: Attention, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    # the Attention module is counted whole (thop then skips its children): qkv and proj linears
    # plus the two attention matmuls, in MACs
    b, n, d = inputs[0].shape
    macs = b * n * d * 3 * d + 2 * b * n * n * d + b * n * d * d
    m.total_ops += torch.tensor([float(macs)], dtype=torch.float64)


def thop_macs(model: nn.Module, resolution: Any = 256) -> int:
    """thop's MAC count (on a deep copy: thop attaches buffers and hooks to modules)."""
    import thop

    res = parse_resolution(resolution)
    clone = copy.deepcopy(model).eval()
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        macs, _ = thop.profile(clone, inputs=(_input(clone, res),),
                               custom_ops={Attention: _thop_attention}, verbose=False)
    return int(macs)


def count(target: ArchConfig | nn.Module, resolution: Any = 256, *, thop: bool = True) -> Cost:
    """Params, FLOPs, activations and per-stage costs of a config or model at ``resolution``."""
    res = parse_resolution(resolution)
    if isinstance(target, ArchConfig):  # refused before anything is built: a patch that does not fit, a
        check_resolution(target, res)  # network too large for memory (mvsearch.cost.bounds)
        check_cost(target, res)
    model = build_model(target) if isinstance(target, ArchConfig) else target
    with eval_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fca, aca = _analyses(model, res)
        total = int(fca.total())
        by_module = fca.by_module()
        activations = int(aca.total())
    stages = []
    children = dict(model.named_children())
    names = MobileViT.STAGES if isinstance(model, MobileViT) else tuple(children)
    for name in names:
        sub = children[name]
        stages.append(StageCost(
            name=name,
            params=sum(p.numel() for p in sub.parameters() if p.requires_grad),
            flops=int(by_module.get(name, 0)),
        ))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Cost(
        params=params,
        flops=total,
        thop_macs=thop_macs(model, res) if thop else None,
        activations=activations,
        resolution=res,
        stages=tuple(stages),
    )
