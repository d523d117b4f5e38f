"""BatchNorm followed by SiLU in training, keeping one tensor for the backward pass instead of two.

In ``ConvBNAct`` (conv -> BatchNorm -> SiLU) autograd keeps the conv's output (BatchNorm's
backward needs it) *and* BatchNorm's output (SiLU's backward needs it): two activation-sized
tensors per unit, besides the SiLU output the next conv keeps. BatchNorm's output is a per-channel
affine map of the conv's output, ``z = x * (weight * invstd) + (bias - mean * weight * invstd)``,
so :class:`BNSiLU` keeps only ``x`` (and the batch statistics) and recomputes ``z`` in the backward
pass: one elementwise pass, against a third of the conv units' saved activations.

The forward pass calls the same ATen kernels as ``nn.BatchNorm2d`` and ``nn.SiLU`` (so the same
output, the same running-statistics update); the backward pass calls the kernels autograd would
call (``silu_backward``, ``native_batch_norm_backward``) on the recomputed ``z``, whose rounding may
differ from the forward's in the last bit. :func:`lean_bn_silu` switches it on for the
``ConvBNAct`` units of a model by giving each an instance-level ``forward``: the modules, their
parameters and state_dict stay as they are, and the plain path runs whenever it does not apply
(eval mode, no grad, not float32 on CPU, other layers than BatchNorm2d + SiLU).
"""
from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class BNSiLU(torch.autograd.Function):
    """``silu(batch_norm(x))`` in training mode that saves ``x`` but not the normalised tensor."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
                momentum: float, eps: float) -> torch.Tensor:
        z, mean, invstd = torch.ops.aten.native_batch_norm(x, weight, bias, running_mean, running_var, True,
                                                           momentum, eps)
        out = F.silu(z)
        del z  # not kept: recomputed in backward
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, weight, bias, mean, invstd = ctx.saved_tensors
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = weight * invstd
        z = torch.addcmul((bias - mean * scale).reshape(shape), x, scale.reshape(shape))
        dz = torch.ops.aten.silu_backward(grad, z)
        del z
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            dz, x, weight, None, None, mean, invstd, True, ctx.eps, list(ctx.needs_input_grad[:3]))
        return dx, dw, db, None, None, None, None


def _factor(bn: nn.BatchNorm2d) -> float:
    """Advance ``num_batches_tracked`` and return the running-average factor, as BatchNorm's forward does."""
    if bn.num_batches_tracked is None:
        return 0.0 if bn.momentum is None else bn.momentum
    bn.num_batches_tracked.add_(1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


def _lean_forward(self: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    conv, bn, act = self[0], self[1], self[2]
    x = conv(x)
    if not (bn.training and torch.is_grad_enabled() and x.dtype == torch.float32 and x.device.type == "cpu"
            and bn.affine and bn.track_running_stats and not bn._forward_hooks and not act._forward_hooks):
        return act(bn(x))
    return BNSiLU.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, _factor(bn), bn.eps)


def lean_bn_silu(model: nn.Module) -> int:
    """Make every ``[conv, BatchNorm2d, SiLU]`` Sequential of ``model`` use :class:`BNSiLU` in training; returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[0], nn.Conv2d) \
                and type(m[1]) is nn.BatchNorm2d and type(m[2]) is nn.SiLU and not m[2].inplace:
            m.forward = types.MethodType(_lean_forward, m)
            n += 1
    return n


def plain_bn_silu(model: nn.Module) -> int:
    """Undo :func:`lean_bn_silu`; returns how many units went back to the plain forward."""
    n = 0
    for m in model.modules():
        if getattr(m.__dict__.get("forward"), "__func__", None) is _lean_forward:
            del m.forward
            n += 1
    return n


__all__ = ["BNSiLU", "lean_bn_silu", "plain_bn_silu"]
