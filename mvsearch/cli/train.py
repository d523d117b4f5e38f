"""``mvsearch train``: one proxy training of a preset or config on real data."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
import click
import torch

from mvsearch.arch.geometry import check_resolution
from mvsearch.cli.options import echo, load_arch_choice, print_json
from mvsearch.core.atomic import check_target, save_state_dict
from mvsearch.core.errors import DataError, MvsearchError, TrainError
from mvsearch.core.jemalloc import name as malloc_name
from mvsearch.core.runtime import resolve_device
from mvsearch.core.limits import check_digits
from mvsearch.core.text import quote, shorten
from mvsearch.cost.bounds import check_cost
from mvsearch.data import load_data, parse_spec, proxy_split
from mvsearch.proxy.evaluate import evaluate
from mvsearch.proxy.run import run_proxy
from mvsearch.proxy.settings import ProxySettings, collapse_warnings, proxy_arch


_DEFAULT = ProxySettings()


class _Samples(click.ParamType):
    """A positive integer, or ``all``."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).strip().lower() == "all":
            return None
        try:
            n = int(check_digits(str(value), "", TrainError))
        except (ValueError, TrainError):
            self.fail(f"expected a positive integer or 'all', got {shorten(value)}", param, ctx)
        if n < 1:
            self.fail(f"expected a positive integer or 'all', got {n}", param, ctx)
        return n


@click.command()
@click.option("--preset", help="A paper preset: mobilevit_xxs, mobilevit_xs, mobilevit_s.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="An architecture YAML (as `mvsearch export --format yaml` writes).")
@click.option("--data", "data_spec", default=_DEFAULT.data, show_default=True,
              help="Data spec: fashion-mnist, mnist, cifar10, cifar100, NAME:DIR, idx:DIR, "
                   "imagefolder:PATH, npz:FILE, synthetic[:classes=K,samples=N,size=S].")
@click.option("--epochs", type=int, default=_DEFAULT.epochs, show_default=True)
@click.option("--resolution", type=int, default=_DEFAULT.resolution, show_default=True,
              help="Proxy input side R (square images).")
@click.option("--stem-stride", type=click.Choice(["1", "2"]), default=str(_DEFAULT.stem_stride),
              show_default=True, help="Stem stride of the trained net (deployed nets use 2).")
@click.option("--batch-size", type=int, default=_DEFAULT.batch_size, show_default=True)
@click.option("--train-samples", type=_Samples(), default=str(_DEFAULT.train_samples), show_default=True,
              help="Stratified training subset, or 'all' (what the validation split leaves).")
@click.option("--val-samples", type=int, default=_DEFAULT.val_samples, show_default=True,
              help="Stratified validation split carved from the training set.")
@click.option("--lr", type=float, default=_DEFAULT.lr, show_default=True, help="Peak AdamW learning rate.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads (default: the usable CPUs).")
@click.option("--compile", "use_compile", is_flag=True, help="torch.compile the model (CUDA only).")
@click.option("--test", "eval_test", is_flag=True,
              help="Also report accuracy on the test split (final evaluation; never used by search).")
@click.option("--save-weights", type=click.Path(dir_okay=False),
              help="Write the trained proxy net's state_dict here.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Decoded-tensor cache (default: $MVSEARCH_CACHE or ~/.cache/mvsearch).")
@click.option("--download", is_flag=True,
              help="Download a named dataset from its official source if it is not found locally.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def command(preset, config_path, data_spec, epochs, resolution, stem_stride, batch_size, train_samples,
            val_samples, lr, seed, device, threads, use_compile, eval_test, save_weights, cache_dir,
            download, as_json):
    """Train a preset or config with the proxy settings and report validation accuracy per epoch."""
    t0 = time.perf_counter()
    # every option and file is checked before anything is loaded, trained or written
    cfg = load_arch_choice(preset, config_path, None)
    proxy = ProxySettings(data=data_spec, resolution=resolution, stem_stride=int(stem_stride),
                          epochs=epochs, batch_size=batch_size, train_samples=train_samples,
                          val_samples=val_samples, lr=lr)
    proxy.train_config(seed=seed, device=device, threads=threads, compile=use_compile)  # seed, threads bounds
    resolve_device(device)  # --device cuda without a GPU fails here, not after loading the data
    arch = proxy_arch(cfg, proxy, cfg.num_classes)
    check_resolution(arch, resolution)
    check_cost(arch, resolution, batch=batch_size, what="the proxy network")
    parse_spec(data_spec)
    weights = Path(save_weights) if save_weights else None
    if weights is not None:
        if not weights.parent.is_dir():
            raise DataError(f"--save-weights: folder {quote(weights.parent)} does not exist; create it first")
        check_target(weights)  # a directory, a device or a FIFO is refused now, not after the training
        if not os.access(weights.parent, os.W_OK | os.X_OK):
            raise DataError(f"--save-weights: folder {quote(weights.parent)} is not writable; choose another")
    tty = sys.stderr.isatty()

    def report(e):
        if not as_json:
            echo(f"epoch {e.epoch}/{epochs}  val_acc {e.val_accuracy:.4f}  val_loss {e.val_loss:.4f}  "
                 f"train_loss {e.train_loss:.4f}  {e.images_per_s:.0f} img/s")

    split: list = []
    data = load_data(data_spec, resolution=resolution, cache_dir=cache_dir, download=download,
                     check=lambda d: split.append(proxy_split(d, train_samples=proxy.train_samples,
                                                              val_samples=proxy.val_samples, seed=0)))
    data_s = time.perf_counter() - t0
    for w in collapse_warnings(arch, resolution):  # after the checks (a bad input is one error line),
        echo(f"warning: {w}", err=True)  # before the (long) training, where it can be acted on
    if not as_json:
        echo(f"{data.summary()}{' (cached)' if data.cached else ''}, loaded in {data_s:.1f} s")
    run = run_proxy(cfg, proxy, seed=seed, device=device, threads=threads, compile=use_compile, data=data,
                    split=split[0], callback=report, progress=tty)
    res = run.result
    out = res.to_dict()
    out.update({
        "preset": preset, "config": config_path, "data": data_spec, "data_name": data.name,
        "num_classes": data.num_classes, "data_load_s": data_s, "data_cached": data.cached,
        "seed": seed, "proxy": proxy.to_dict(), "arch": cfg.to_dict(), "proxy_arch": run.arch.to_dict(),
        "params": sum(p.numel() for p in run.model.parameters()), "warnings": run.warnings,
        "malloc": malloc_name(),
    })
    if eval_test:
        acc, loss = evaluate(run.model, data.test_x, data.test_y, device=torch.device(res.device))
        out.update({"test_accuracy": acc, "test_loss": loss})
    if weights is not None:
        try:
            save_state_dict(run.model, weights)
        except OSError as exc:
            raise MvsearchError(f"--save-weights: cannot write {quote(weights)} ({exc.strerror})") from None
        out["weights"] = str(weights)
    if as_json:
        print_json(out)
        return
    stop = " (stopped early)" if res.stopped else ""
    echo(f"val_accuracy {res.val_accuracy:.4f}  val_loss {res.val_loss:.4f}  "
               f"{res.images_per_s:.0f} img/s  {res.wall_s:.1f} s on {res.device}{stop}")
    if eval_test:
        echo(f"test_accuracy {out['test_accuracy']:.4f}  test_loss {out['test_loss']:.4f}")
    if weights is not None:
        echo(f"weights: {weights}")
