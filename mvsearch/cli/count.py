"""``mvsearch count``: params, FLOPs and activations of a preset or config."""
from __future__ import annotations

import click

from mvsearch.arch.geometry import parse_resolution
from mvsearch.cli.options import echo, load_arch_choice, preset_or_config, print_json
from mvsearch.core.units import format_count, format_flops
from mvsearch.cost.traced import count


@click.command()
@preset_or_config
@click.option("--resolution", default="256", show_default=True,
              help="Input resolution: N (square) or HxW, e.g. 256x192.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def command(preset, config_path, num_classes, resolution, as_json):
    """Count params, FLOPs (1 multiply-add = 1 FLOP), thop MACs and activations, per stage."""
    cfg = load_arch_choice(preset, config_path, num_classes)
    cost = count(cfg, parse_resolution(resolution))
    if as_json:
        out = cost.to_dict()
        out["preset"] = preset
        out["arch"] = cfg.to_dict()
        print_json(out)
        return
    h, w = cost.resolution
    echo(f"{preset or config_path} at {h}x{w}, {cfg.num_classes} classes")
    echo(f"{'stage':<14}{'params':>12}{'FLOPs':>16}{'share':>8}")
    for s in cost.stages:
        share = 100.0 * s.flops / cost.flops if cost.flops else 0.0
        echo(f"{s.name:<14}{s.params:>12,}{s.flops:>16,}{share:>7.1f}%")
    echo(f"{'total':<14}{cost.params:>12,}{cost.flops:>16,}{100.0:>7.1f}%")
    echo(f"params {format_count(cost.params)}  FLOPs {format_flops(cost.flops)} (fvcore, 1 multiply-add = 1 FLOP)"
         f"  thop MACs {format_flops(cost.thop_macs)}  activations {format_count(cost.activations)}")
