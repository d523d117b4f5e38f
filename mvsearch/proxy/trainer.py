"""The proxy trainer: short, fast, deterministic training with a per-epoch callback.

AdamW (no weight decay on norms and biases), the learning rate warmed up linearly then decayed
along a cosine by torch's own schedulers (:func:`warmup_cosine`), label-smoothed cross-entropy,
and whole uint8 batches augmented on the training device (:mod:`mvsearch.proxy.augment`). No
DataLoader: the tensors already sit in memory. On CUDA: bf16 autocast and optional
``torch.compile``. On CPU the thread count is capped at the CPUs this process may use
(:func:`mvsearch.core.runtime.cpu_threads`), and freed memory stays in the process while training
(:mod:`mvsearch.core.allocator`), so a step does not page-fault in what the last one freed.

After every epoch BatchNorm statistics are re-estimated on a fixed subset of training images and
the validation split is evaluated (:mod:`mvsearch.proxy.evaluate`): the last epoch on all of it, the
earlier ones (whose accuracies only feed a pruner) on a fixed stratified subset of ``epoch_val``
images, so a large validation split, which narrows the final accuracy's interval, costs one full
pass per training rather than one per epoch; then ``callback(EpochStats)``
is called; returning True stops training early (``stopped=True``), and an exception raised inside
it (e.g. Optuna's ``TrialPruned``) propagates unchanged. Same seed, same thread count -> same
result on CPU. A NaN or infinite loss raises :class:`~mvsearch.core.errors.NonFiniteLossError`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from mvsearch.arch.config import ArchConfig
from mvsearch.core.allocator import hold_freed_memory
from mvsearch.core.errors import NonFiniteLossError, TrainError
from mvsearch.core.limits import MAX_BATCH, MAX_EPOCHS, MAX_SEED, MAX_THREADS, check_int
from mvsearch.core.text import shorten
from mvsearch.core.runtime import autocast, cpu_threads, resolve_device
from mvsearch.data.split import ProxySplit, stratified
# bench/ and tests/test_cli_run.py still import augment, compact, crop_padding and evaluate from here
from mvsearch.model.bn_silu import lean_bn_silu, plain_bn_silu
from mvsearch.proxy.augment import augment, compact, crop_padding
from mvsearch.proxy.evaluate import evaluate, recalibrate_bn


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the proxy's defaults live in :class:`mvsearch.proxy.settings.ProxySettings`)."""

    epochs: int = 3  # passes over the training split
    batch_size: int = 64  # images per optimizer step
    lr: float = 2e-3  # peak AdamW learning rate (after warmup)
    weight_decay: float = 0.05  # AdamW decoupled weight decay (not on norms and biases)
    warmup_epochs: float = 0.3  # linear warmup length; cosine decay to 0 afterwards
    label_smoothing: float = 0.1  # cross-entropy label smoothing
    seed: int = 0  # order, augmentation, dropout (and init when train() is given an ArchConfig)
    device: str = "auto"  # "auto" (cuda when available), "cpu" or "cuda"
    compile: bool = False  # torch.compile the model (CUDA only; ignored on CPU)
    threads: int | None = None  # CPU threads (None: torch's default capped at the usable CPUs)
    crop_padding: int | None = None  # random-crop padding in pixels (None: resolution // 32)
    eval_batch_size: int | None = None  # images per validation forward pass (None: batch_size, so that
    # evaluation's blocks fit where training's were freed and never grow the process beyond training's peak)
    channels_last: bool = True  # NHWC activations (faster convs on CPU and GPU)
    amp: bool = True  # bf16 autocast on CUDA (never on CPU, where it is slower)
    nan_check_every: int = 20  # steps between finiteness checks on CUDA (every step on CPU)
    bn_calibration: int = 512  # training images that re-estimate BatchNorm statistics before each
    # validation (0: keep the running averages; see recalibrate_bn)
    epoch_val: int = 512  # validation images of every epoch but the last (what a pruner sees): a fixed
    # stratified subset of the validation split; the last epoch is always judged on all of it (0: all)
    hold_memory: bool = True  # on CPU, keep freed memory in the process while training (glibc; see
    # mvsearch.core.allocator): no page faults re-touching each step's activations
    lean_bn: bool = True  # on CPU, each conv -> BatchNorm -> SiLU unit keeps one tensor for the backward
    # pass instead of two, recomputing BatchNorm's output there (mvsearch.model.bn_silu)

    def __post_init__(self) -> None:
        for name in ("compile", "channels_last", "amp", "hold_memory", "lean_bn"):
            if not isinstance(getattr(self, name), bool):
                raise TrainError(f"{name}: must be true or false, got {getattr(self, name)!r}")
        for name in ("bn_calibration", "epoch_val"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise TrainError(f"{name}: must be a non-negative integer, got {v!r}")
        for name, bound in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH), ("eval_batch_size", MAX_BATCH),
                            ("nan_check_every", MAX_EPOCHS)):
            v = getattr(self, name)
            if name == "eval_batch_size" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TrainError(f"{name}: must be a positive integer, got {shorten(v)}")
            check_int(v, name, 1, bound, TrainError)
        check_int(self.seed, "seed", 0, MAX_SEED, TrainError)
        for name in ("lr", "weight_decay", "warmup_epochs", "label_smoothing"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise TrainError(f"{name}: must be a finite number >= 0, got {shorten(v)}")
        if self.lr <= 0:
            raise TrainError(f"lr: must be > 0, got {self.lr}")
        if self.label_smoothing >= 1:
            raise TrainError(f"label_smoothing: must be in [0, 1), got {self.label_smoothing}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise TrainError(f"device: must be auto, cpu or cuda, got {self.device!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise TrainError(f"threads: must be a positive integer or None, got {self.threads!r}")
        if self.threads is not None:
            check_int(self.threads, "threads", 1, MAX_THREADS, TrainError)
        if self.crop_padding is not None and (not isinstance(self.crop_padding, int) or self.crop_padding < 0):
            raise TrainError(f"crop_padding: must be an integer >= 0 or None, got {self.crop_padding!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EpochStats:
    """What the callback receives after each epoch."""

    epoch: int  # 1-based
    val_accuracy: float  # top-1 on the validation split, in [0, 1]
    val_loss: float  # mean cross-entropy (no smoothing) on the validation split
    train_loss: float  # mean training loss (with smoothing) over the epoch
    images_per_s: float  # training throughput of this epoch (excludes validation)
    lr: float = 0.0  # learning rate at the end of the epoch
    wall_s: float = 0.0  # seconds since training started
    val_samples: int = 0  # validation images behind val_accuracy (a subset before the last epoch)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """The outcome of one training run."""

    val_accuracy: float  # after the last epoch run
    val_loss: float
    epochs: list[EpochStats]
    images_per_s: float  # training images / training seconds, over all epochs
    wall_s: float  # whole run, validation included
    stopped: bool  # True when the callback stopped training early
    best_val_accuracy: float = 0.0
    device: str = "cpu"
    train_samples: int = 0
    val_samples: int = 0
    steps: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["epochs"] = [e.to_dict() for e in self.epochs]
        return d


def build_seeded(arch: ArchConfig, seed: int) -> nn.Module:
    """``build_model(arch)`` initialised from ``seed``, leaving the caller's RNG state untouched."""
    from mvsearch.model.network import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only, not on norms and biases (timm's convention)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(opt: torch.optim.Optimizer, total: int, warmup: int) -> LRScheduler:
    """Linear warmup for ``warmup`` steps, then cosine decay toward 0 over the rest of ``total``.

    torch's LinearLR then CosineAnnealingLR (chained by SequentialLR); call ``step()`` after each
    optimizer step. With ``peak`` the optimizer's lr, step s (0-based) trains at
    ``peak * (s + 1) / warmup`` while ``s < warmup`` (so the first step already moves, and the
    last warmup step is at the peak), then at ``peak * (1 + cos(pi * (s - warmup) / (total -
    warmup))) / 2``: the peak again, down to just above 0 at the last step.
    """
    if total < 1 or not 0 <= warmup <= total:
        raise ValueError(f"warmup_cosine: need total >= 1 and 0 <= warmup <= total, "
                         f"got total={total}, warmup={warmup}")
    phases: list[LRScheduler] = []
    if warmup:
        phases.append(LinearLR(opt, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1))
    if total > warmup:
        phases.append(CosineAnnealingLR(opt, T_max=total - warmup, eta_min=0.0))
    if len(phases) == 1:
        return phases[0]
    return SequentialLR(opt, phases, milestones=[warmup])


def train(model: nn.Module | ArchConfig, split: ProxySplit, cfg: TrainConfig, *, hflip: bool = True,
          callback: Callable[[EpochStats], bool | None] | None = None,
          progress: bool = False) -> TrainResult:
    """Train ``model`` on ``split.train_*``, validating on ``split.val_*`` after each epoch.

    ``model`` is trained in place (moved to the device); pass an :class:`ArchConfig` instead to
    have it built here by ``build_seeded(arch, cfg.seed)`` (the same thing: fully deterministic on
    CPU). The global RNG state of the caller is restored afterwards.
    """
    device = resolve_device(cfg.device)
    n = len(split.train_y)
    if n == 0 or len(split.val_y) == 0:
        raise TrainError(f"empty split: {n} training and {len(split.val_y)} validation images")
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with cpu_threads(cfg.threads), hold_freed_memory(cfg.hold_memory and device.type == "cpu"), \
            torch.random.fork_rng(devices=fork_devices):
        if isinstance(model, ArchConfig):
            model = build_seeded(model, cfg.seed)
        torch.manual_seed(cfg.seed)
        lean = cfg.lean_bn and device.type == "cpu" and lean_bn_silu(model) > 0
        try:
            return _train(model, split, cfg, device, hflip, callback, progress)
        finally:
            if lean:  # the model leaves as it came: plain modules (export, deepcopy, pickling)
                plain_bn_silu(model)


def _train(model, split, cfg, device, hflip, callback, progress) -> TrainResult:
    t_start = time.perf_counter()
    g = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    net = model
    if cfg.compile and device.type == "cuda":
        net = torch.compile(model)
    x = compact(split.train_x).to(device)
    y = split.train_y.to(device)
    val_x, val_y = compact(split.val_x), split.val_y
    if device.type == "cuda":
        val_x, val_y = val_x.to(device), val_y.to(device)
    # the epochs before the last are judged on a fixed stratified subset of the validation split (the
    # same for every seed and trial): they only feed a pruner, and a large split costs a full pass each
    early = stratified(val_y.cpu(), cfg.epoch_val, torch.Generator().manual_seed(0)).to(val_y.device) \
        if 0 < cfg.epoch_val < len(val_y) else slice(None)
    res = x.shape[-1]
    pad = crop_padding(cfg, res)
    n = len(y)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)  # drop the last partial batch (BatchNorm needs > 1 sample)
    total = steps_per_epoch * cfg.epochs
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    opt_kw = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, **opt_kw)
    schedule = warmup_cosine(opt, total, warmup)
    check_every = 1 if device.type == "cpu" else cfg.nan_check_every
    # a fixed, class-mixed subset of the training split for BatchNorm calibration
    calib = x[torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 1))[:cfg.bn_calibration]
              .to(device)] if cfg.bn_calibration else x[:0]

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", leave=False, dynamic_ncols=True)
    epochs: list[EpochStats] = []
    stopped = False
    step = 0
    train_seconds = 0.0
    lr = cfg.lr
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=g).to(device)
            loss_sum = torch.zeros((), dtype=torch.float32, device=device)
            t0 = time.perf_counter()
            for s in range(steps_per_epoch):
                idx = perm[s * bs:(s + 1) * bs]
                xb = augment(x[idx], pad, hflip and split.hflip, g, cfg.channels_last)
                yb = y[idx]
                lr = opt.param_groups[0]["lr"]  # this step's
                # the last step's gradients go before this step's activations arrive: on CPU they would
                # otherwise sit between them in the heap and fragment it (see mvsearch.core.allocator)
                opt.zero_grad(set_to_none=True)
                with autocast(device, cfg.amp):
                    loss = F.cross_entropy(net(xb), yb, label_smoothing=cfg.label_smoothing)
                loss.backward()
                opt.step()
                schedule.step()
                loss_sum += loss.detach().float()
                step += 1
                if (s + 1) % check_every == 0 or s + 1 == steps_per_epoch:
                    if not bool(torch.isfinite(loss_sum)):
                        raise NonFiniteLossError(
                            f"training loss became {float(loss_sum)} at epoch {epoch}, step {step}; "
                            f"lower the learning rate (lr={cfg.lr}) or check the data")
                if bar is not None:
                    bar.update(1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            train_seconds += dt
            recalibrate_bn(net, calib, batch_size=cfg.batch_size, device=device,
                           channels_last=cfg.channels_last, amp=cfg.amp)
            vx, vy = (val_x, val_y) if epoch == cfg.epochs else (val_x[early], val_y[early])
            acc, vloss = evaluate(net, vx, vy, batch_size=cfg.eval_batch_size or cfg.batch_size, device=device,
                                  channels_last=cfg.channels_last, amp=cfg.amp)
            stats = EpochStats(epoch=epoch, val_accuracy=acc, val_loss=vloss,
                               train_loss=float(loss_sum) / steps_per_epoch,
                               images_per_s=steps_per_epoch * bs / dt if dt > 0 else 0.0,
                               lr=lr, wall_s=time.perf_counter() - t_start, val_samples=len(vy))
            epochs.append(stats)
            if bar is not None:
                bar.set_postfix(epoch=epoch, val_acc=f"{acc:.4f}", loss=f"{stats.train_loss:.3f}")
            if callback is not None and callback(stats) is True:
                stopped = True
                break
    finally:
        if bar is not None:
            bar.close()
    last = epochs[-1]
    return TrainResult(
        val_accuracy=last.val_accuracy, val_loss=last.val_loss, epochs=epochs,
        images_per_s=step * bs / train_seconds if train_seconds > 0 else 0.0,
        wall_s=time.perf_counter() - t_start, stopped=stopped,
        best_val_accuracy=max(e.val_accuracy for e in epochs), device=str(device),
        train_samples=n, val_samples=len(split.val_y), steps=step, config=cfg.to_dict(),
    )
