"""mvsearch/core/jemalloc.py: a training command re-executes itself once on jemalloc where it is installed.

The environment it re-executes with is checked directly; the rest runs real processes on Debian's
libjemalloc2 (installed here when missing, as root, like the browser and database tests do): the
``mvsearch`` command trains on it, ``MVSEARCH_JEMALLOC=0`` trains on glibc, a bad path is one line
and exit 2, and inside ``hold_freed_memory`` a step reuses its pages, which go back on leaving.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mvsearch.core import jemalloc
from mvsearch.core.errors import MvsearchError
from tests.test_allocator import STEP_HELPERS

BASE = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def test_the_environment_preloads_the_library_once_with_its_decay_off(tmp_path):
    lib = tmp_path / "libjemalloc.so.2"
    lib.write_bytes(b"")
    env = jemalloc.preload_env({**BASE, jemalloc.ENV: str(lib)})
    assert env["LD_PRELOAD"] == str(lib) and env["MALLOC_CONF"] == jemalloc.HOLD_CONF and env[jemalloc.GUARD] == "1"
    # a preload of the user's goes after it; a MALLOC_CONF of the user's wins; no decay setting without held memory
    env = jemalloc.preload_env({**BASE, jemalloc.ENV: str(lib), "LD_PRELOAD": "/x/libfoo.so", "MALLOC_CONF": "narenas:2"})
    assert env["LD_PRELOAD"] == f"{lib} /x/libfoo.so" and env["MALLOC_CONF"] == "narenas:2"
    env = jemalloc.preload_env({**BASE, jemalloc.ENV: str(lib), "MVSEARCH_HOLD_MEMORY": "0"})
    assert "MALLOC_CONF" not in env
    # never twice, and never when switched off
    assert jemalloc.preload_env({**BASE, jemalloc.ENV: str(lib), jemalloc.GUARD: "1"}) is None
    assert jemalloc.preload_env({**BASE, jemalloc.ENV: "0"}) is None
    with pytest.raises(MvsearchError, match=r"MVSEARCH_JEMALLOC='/no/such.so': no such file.*MVSEARCH_JEMALLOC=0"):
        jemalloc.preload_env({**BASE, jemalloc.ENV: "/no/such.so"})


def test_this_test_process_is_not_on_jemalloc():
    assert not jemalloc.loaded() and not jemalloc.holds() and jemalloc.purge() is False
    assert jemalloc.name() == "glibc"


@pytest.fixture(scope="module")
def libjemalloc() -> str:
    """Debian's libjemalloc2, installed when missing (as root, with apt)."""
    if jemalloc.library({**BASE}) is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "libjemalloc2"]
        if subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL) != 0:
            subprocess.call(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
            subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL)
    path = jemalloc.library({**BASE})
    if path is None:
        pytest.fail("jemalloc is needed: `apt-get install libjemalloc2`")
    return path


def mvsearch(*argv: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (jemalloc.ENV, jemalloc.GUARD, "LD_PRELOAD", "MALLOC_CONF")}
    env.update(env_extra or {})
    script = Path(sys.executable).parent / "mvsearch"  # the console script, as a user runs it
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mvsearch"]
    return subprocess.run([*cmd, *argv], capture_output=True, text=True, env=env, timeout=300)


TRAIN = ("train", "--preset", "mobilevit_xxs", "--data", "synthetic:classes=2,samples=64", "--epochs", "1",
         "--train-samples", "32", "--val-samples", "16", "--threads", "1", "--json")


def test_a_training_command_runs_on_jemalloc_and_switching_it_off_runs_glibc(libjemalloc):
    on = mvsearch(*TRAIN)
    off = mvsearch(*TRAIN, env_extra={jemalloc.ENV: "0"})
    assert on.returncode == 0 and off.returncode == 0, (on.stderr, off.stderr)
    a, b = json.loads(on.stdout), json.loads(off.stdout)
    assert a["malloc"] == "jemalloc (held)" and b["malloc"] == "glibc"
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)  # the allocator changes no result
    # python -m mvsearch does the same; with held memory off jemalloc keeps its own decay
    p = subprocess.run([sys.executable, "-m", "mvsearch", *TRAIN], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "MVSEARCH_HOLD_MEMORY": "0"})
    assert p.returncode == 0 and json.loads(p.stdout)["malloc"] == "jemalloc", p.stderr
    # a command that does not train is not re-executed
    assert mvsearch("count", "--preset", "mobilevit_xxs", "--json").returncode == 0


def test_a_bad_library_path_is_one_line_and_exit_2():
    p = mvsearch(*TRAIN, env_extra={jemalloc.ENV: "/no/such/libjemalloc.so.2"})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        "error: MVSEARCH_JEMALLOC='/no/such/libjemalloc.so.2': no such file; name libjemalloc.so.2's path, "
        "or set MVSEARCH_JEMALLOC=0 to train on glibc's malloc"]


STEPS = STEP_HELPERS + textwrap.dedent("""
    from mvsearch.core import jemalloc

    with hold_freed_memory() as held:
        out = {"held": held, "malloc": jemalloc.name(), "faults": [faults_of_one_step() for _ in range(4)]}
        out["rss_inside"] = rss_mib()
    out["rss_after"] = rss_mib()
    print(json.dumps(out))
""")


def test_on_jemalloc_a_held_step_reuses_its_pages_and_leaving_hands_them_back(libjemalloc):
    env = {k: v for k, v in os.environ.items() if k not in ("MVSEARCH_HOLD_MEMORY", "MALLOC_CONF")}
    env.update({"LD_PRELOAD": libjemalloc, "MALLOC_CONF": jemalloc.HOLD_CONF})
    p = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["held"] is True and out["malloc"] == "jemalloc (held)"
    pages = (176 << 20) // 4096  # one step touches 176 MiB
    assert out["faults"][0] > pages // 2, out  # the first step faults its blocks in
    assert max(out["faults"][1:]) < pages // 20, out  # the next ones reuse them
    assert out["rss_after"] < out["rss_inside"] - 100, out  # purged on leaving the block


def test_the_memory_estimate_for_jobs_auto_uses_the_jemalloc_line_on_jemalloc(libjemalloc):
    src = textwrap.dedent("""
        import json
        from mvsearch.arch.presets import get_preset
        from mvsearch.proxy import memory
        from mvsearch.space.loader import load_space
        proxy = load_space("mobile").proxy_settings()
        arch = get_preset("mobilevit_s", 1000)
        acts = memory.proxy_activations(arch, proxy, 10)
        line = {k: round(b + p * acts * proxy.batch_size) for k, (b, p) in memory.FITS.items() if k != False}
        print(json.dumps({"estimate": memory.training_memory(arch, proxy, 10), "jemalloc": line["jemalloc"],
                          "glibc": line[True]}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("MVSEARCH_HOLD_MEMORY", "MALLOC_CONF")}
    outs = {}
    for label, extra in (("on", {"LD_PRELOAD": libjemalloc, "MALLOC_CONF": jemalloc.HOLD_CONF}), ("off", {})):
        p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env={**env, **extra}, timeout=120)
        assert p.returncode == 0, p.stderr
        outs[label] = json.loads(p.stdout.strip().splitlines()[-1])
    assert outs["on"]["estimate"] == outs["on"]["jemalloc"] < outs["off"]["estimate"] == outs["off"]["glibc"]
    assert outs["on"]["estimate"] < 3.5e9  # mobilevit_s measured 2.93 GB on jemalloc, 4.11-4.60 GB on glibc
