"""The generated pages as a person sees them: opened in headless Chromium with no network.

Chromium (Debian's ``chromium``, installed here when missing and we are root) is driven over the
DevTools protocol with a small WebSocket client written below (no extra package). For each page
the test collects every uncaught exception, console error and log error, every network request
(anything but file:, data:, blob: or about: fails the test: the pages must work offline), counts
the markers each plot actually drew in its SVG, clicks a table header to check the sorting script,
checks that no two titles, legends, axis titles, tick labels or annotations of a plot overlap at
a 1400 px wide window, and saves a screenshot under the test's temporary directory (or under
``$MVSEARCH_SCREENSHOTS`` when set, to look at). A page with a planted error proves the harness sees
JavaScript errors, and a planted overlap that it sees overlaps.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mvsearch.analysis.pareto import compute
from mvsearch.analysis.report import write_pareto, write_report
from tests._studies import SEARCHED, make_study
from tests.test_report import tiered_search

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio", "--window-size=1400,1600",
         # belt and braces for "no network": no proxy reachable, no name resolves
         "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]
LOCAL = ("file:", "data:", "blob:", "about:")
WIDTH = 1400  # the window width at which nothing on a plot may overlap


def chromium() -> str:
    """Path of a Chromium binary, installing Debian's package when missing (as root)."""
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL) != 0:
            subprocess.call(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
            subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL)
        if shutil.which("chromium"):
            return shutil.which("chromium")
    pytest.fail("headless Chromium is needed: `apt-get install chromium` (or deselect with -m 'not browser')")


# ---------------------------------------------------------------------- a minimal WebSocket + CDP client
class WebSocket:
    """RFC 6455 client: text frames out (masked), text frames in (fragmented or not); enough for CDP."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("DevTools connection closed")
            buf += chunk
        return buf

    def send(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        head = bytes([0x81])  # FIN + text
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            mask = self._exact(4) if b1 & 0x80 else None
            data = self._exact(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            op = b0 & 0x0F
            if op == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if op == 0x9:  # ping -> pong
                self.sock.sendall(bytes([0x8A, 0x80 | len(data)]) + b"\0\0\0\0" + data)
                continue
            if op in (0x0, 0x1, 0x2):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self) -> None:
        self.sock.close()


class Browser:
    """Headless Chromium with one page, driven over CDP; records errors and requests."""

    def __init__(self, tmp: Path) -> None:
        profile = tmp / "chromium-profile"
        profile.mkdir()
        self.proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""
                self.close()
                pytest.fail(f"Chromium did not start its DevTools endpoint: {err}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        self.ws = WebSocket(pages[0]["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e["method"] == name for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(name)
            self.events.append(json.loads(self.ws.recv()))

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", timeout=120)

    def eval(self, expression: str, timeout: float = 60.0) -> Any:
        res = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                        returnByValue=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"evaluating in the page failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: Path) -> Path:
        """The whole page: the viewport grown to the page's height first (plots re-lay out), then one shot."""
        keep = os.environ.get("MVSEARCH_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            path = Path(keep) / path.name
        height = self.eval("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=min(int(height), 16000),
                  deviceScaleFactor=1, mobile=False)
        self.eval("new Promise(r => setTimeout(r, 500))")  # plotly's responsive resize is debounced
        shot = self.call("Page.captureScreenshot", format="png")
        self.call("Emulation.clearDeviceMetricsOverride")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("browser"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    # enough completed trials for importances; pruned, failed, baselines and budget rejections too
    return make_study(tmp_path_factory.mktemp("study"), extra_random=10)


# every plot has rendered when each plot div has its full layout and its SVG traces
READY = """new Promise((resolve, reject) => {
  const t0 = Date.now();
  (function poll() {
    const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
    if (plots.length && plots.every(g => g._fullLayout && g.querySelector('.main-svg'))) return resolve(plots.length);
    if (Date.now() - t0 > 60000) return reject(new Error('plots did not render'));
    setTimeout(poll, 100);
  })();
})"""

# per plot: each scatter trace's name, its data length, the markers it drew in the SVG, and its
# vertical error bars that have a length (a bar of no length draws nothing)
POINTS = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  id: gd.id,
  traces: Array.from(gd.querySelectorAll('g.trace.scatter')).map(g => ({
    name: g.__data__[0].trace.name,
    n: g.__data__[0].trace.x.length,
    drawn: g.querySelectorAll('path.point').length,
    bars: Array.from(g.querySelectorAll('path.yerror')).filter(e => e.getBoundingClientRect().height > 0).length})),
  lines: gd.querySelectorAll('g.trace.scatter path.js-line').length,
  bars: gd.querySelectorAll('g.trace.bars g.point').length}))"""


# per plot: every pair of text boxes (titles, legend, colour bar, axis titles, tick labels,
# annotations) whose rectangles intersect by more than a pixel each way
OVERLAPS = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const items = [];
  const add = (sel, kind) => gd.querySelectorAll(sel).forEach(e => {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) items.push({kind, text: (e.textContent || '').slice(0, 40), r});
  });
  add('text.gtitle', 'title'); add('text.gtitle-subtitle', 'subtitle'); add('g.legend', 'legend');
  add('g.colorbar', 'colour bar'); add('text.xtitle, text.ytitle', 'axis title');
  add('g.xtick text', 'x tick'); add('g.ytick text', 'y tick'); add('g.annotation', 'annotation');
  const out = [];
  for (let i = 0; i < items.length; i++) for (let j = i + 1; j < items.length; j++) {
    const a = items[i].r, b = items[j].r;
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 1 && h > 1) out.push(`${items[i].kind} "${items[i].text}" / ${items[j].kind} "${items[j].text}"`);
  }
  return [gd.id, out];
}).filter(p => p[1].length)"""


def _no_overlaps(browser: Browser) -> None:
    browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=1600, deviceScaleFactor=1, mobile=False)
    try:
        browser.eval("new Promise(r => setTimeout(r, 500))")  # plotly's responsive resize is debounced
        assert browser.eval(OVERLAPS) == []
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


def _visit(browser: Browser, path: Path) -> dict[str, Any]:
    browser.open(path.resolve().as_uri())
    n = browser.eval(READY, timeout=90)
    plots = {p["id"].removeprefix("plot-"): p for p in browser.eval(POINTS)}
    assert len(plots) == n
    return plots


def _clean(browser: Browser) -> None:
    assert browser.errors() == []
    remote = [u for u in browser.requests() if not u.startswith(LOCAL)]
    assert remote == [], f"the page fetched from the network: {remote}"


def _drawn(plot: dict[str, Any], prefix: str) -> int:
    (trace,) = [t for t in plot["traces"] if t["name"].startswith(prefix)]
    assert trace["drawn"] == trace["n"]  # every data point is a marker on screen
    return trace["drawn"]


def _bars(plot: dict[str, Any], prefix: str) -> int:
    """The error bars a trace drew (with a length) on screen."""
    (trace,) = [t for t in plot["traces"] if t["name"].startswith(prefix)]
    return trace["bars"]


def test_pareto_page_renders_front_and_presets_offline(browser, study, tmp_path):
    name, storage = study
    p = compute(name, storage, "flops")
    page = write_pareto(p, tmp_path / "pareto.html")
    plots = _visit(browser, page)
    _clean(browser)
    (plot,) = plots.values()
    assert _drawn(plot, "completed") == len(SEARCHED) + 10  # searched trials, none over budget
    assert _drawn(plot, "pruned") == 2
    assert _drawn(plot, "Pareto front") == len(p.front) >= 1
    assert _drawn(plot, "paper presets") == 2  # the XXS and XS baselines
    assert _bars(plot, "completed") == 0  # this study records no val_samples: no interval to draw
    labels = browser.eval("Array.from(document.querySelectorAll('.js-plotly-plot text')).map(t => t.textContent)")
    assert {"mobilevit_xxs", "mobilevit_xs"} <= set(labels)
    assert any("S (paper preset" in t for t in labels), labels  # S was not trained: a labelled rule
    _no_overlaps(browser)
    assert browser.screenshot(tmp_path / "pareto.png").stat().st_size > 10_000


def test_report_page_renders_every_section_offline(browser, study, tmp_path):
    name, storage = study
    path, rep = write_report(name, storage, tmp_path / "report.html")
    plots = _visit(browser, path)
    _clean(browser)
    assert set(plots) == set(rep.figures) and rep.notes == ["pareto-latency"]  # nothing measured
    assert _drawn(plots["pareto-flops"], "completed") == len(SEARCHED) + 10
    assert _drawn(plots["history"], "completed") == len(SEARCHED) + 10 + 2  # + the two baselines
    assert _drawn(plots["curves"], "stopped by the pruner") == 2
    assert plots["knobs"]["lines"] == len(SEARCHED) + 10  # Optuna draws one line per completed searched trial
    assert plots["importance"]["bars"] == 3
    rows = browser.eval("document.querySelectorAll('table.trials tbody tr').length")
    assert rows == 2 + len(SEARCHED) + 2 + 1 + 10  # rejected candidates are not trials people trained
    # the table sorts: click "accuracy" twice (ascending, then descending)
    header = "Array.from(document.querySelectorAll('table.trials th')).find(th => th.textContent.startsWith('accuracy'))"
    for _ in range(2):
        browser.eval(f"{header}.click()")
    col = browser.eval("""(() => { const ths = Array.from(document.querySelectorAll('table.trials th'));
        const i = ths.findIndex(th => th.textContent.startsWith('accuracy'));
        return Array.from(document.querySelectorAll('table.trials tbody tr')).map(r => r.children[i].dataset.v); })()""")
    values = [float(v) for v in col if v != ""]
    assert values == sorted(values, reverse=True) and col[-1] == ""  # the failed trial's blank sorts last
    order = browser.eval("document.querySelector('table.trials caption').textContent")
    assert order == "sorted by accuracy, descending; click a header to sort"
    _clean(browser)
    _no_overlaps(browser)
    assert browser.screenshot(tmp_path / "report.png").stat().st_size > 10_000


def test_a_tiered_report_renders_a_figure_per_tier(browser, tmp_path):
    path, rep = write_report(*tiered_search(tmp_path), tmp_path / "tiered.html")
    plots = _visit(browser, path)
    _clean(browser)
    assert set(plots) == set(rep.figures)
    assert {"history-small", "history-large", "curves-small", "curves-large", "knobs-small", "knobs-large",
            "importance-large", "edf"} <= set(plots)
    assert _drawn(plots["curves-small"], "stopped by the pruner") == 1
    # every completed trial of this search recorded its 32 validation images: one error bar each
    assert _bars(plots["pareto-flops"], "completed") == _drawn(plots["pareto-flops"], "completed") == 15
    assert _bars(plots["pareto-flops"], "paper presets") == 1
    assert _bars(plots["pareto-flops"], "Pareto front") == 0  # its points carry their bars in the traces above
    titles = browser.eval("Array.from(document.querySelectorAll('text.gtitle')).map(t => t.textContent)")
    assert "Optimization history, tier small" in titles and "Optimization history, tier large" in titles
    _no_overlaps(browser)
    assert browser.screenshot(tmp_path / "tiered.png").stat().st_size > 10_000


def test_harness_sees_an_overlap(browser, study, tmp_path):
    # the legend moved onto the title: the overlap check must fail
    name, storage = study
    good = write_pareto(compute(name, storage, "flops"), tmp_path / "good.html").read_text()
    bad = tmp_path / "overlap.html"
    bad.write_text(good.replace('"legend":{"orientation":"v","x":1.02,"xanchor":"left","y":1,"yanchor":"top"}',
                                '"legend":{"orientation":"h","x":0,"xanchor":"left","y":1.2,"yanchor":"bottom"}', 1))
    assert bad.read_text() != good
    _visit(browser, bad)
    with pytest.raises(AssertionError, match="legend"):
        _no_overlaps(browser)


def test_harness_reports_a_javascript_error(browser, study, tmp_path):
    # the same page with one broken script: the checks above must be able to fail
    name, storage = study
    good = write_pareto(compute(name, storage, "flops"), tmp_path / "good.html").read_text()
    bad = tmp_path / "bad.html"
    bad.write_text(good.replace("</body>", "<script>mvsearchMissing()</script></body>"))
    _visit(browser, bad)
    errors = browser.errors()
    assert len(errors) == 1 and "mvsearchMissing is not defined" in errors[0]
    with pytest.raises(AssertionError):
        _clean(browser)


def test_harness_reports_a_network_fetch(browser, study, tmp_path):
    # a page that loads anything from the network (here: plotly from its CDN) must fail the checks
    name, storage = study
    good = write_pareto(compute(name, storage, "flops"), tmp_path / "good.html").read_text()
    cdn = tmp_path / "cdn.html"
    cdn.write_text(good.replace("</head>", '<script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script></head>'))
    _visit(browser, cdn)
    assert "https://cdn.plot.ly/plotly-2.35.2.min.js" in browser.requests()
    with pytest.raises(AssertionError, match="fetched from the network|log: "):
        _clean(browser)


def test_the_scaling_page_renders_laws_bands_and_ladder_offline(browser, tmp_path):
    # a real (tiny) scaling study: two families, 5 points, 2 seeds, trained on synthetic data
    from click.testing import CliRunner

    from mvsearch.cli.main import main
    from tests.test_scale import FAST, TINY

    (tmp_path / "tiny.yaml").write_text(TINY)
    page = tmp_path / "scale.html"
    r = CliRunner().invoke(main, ["scale", "--config", str(tmp_path / "tiny.yaml"), *FAST, "--family", "width,depth",
                                  "--multipliers", "1,2,4,8,16", "--seeds", "2", "--storage",
                                  f"sqlite:///{tmp_path / 's.db'}", "--json", "-o", str(page)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    plots = _visit(browser, page)
    _clean(browser)
    assert set(plots) == {"error-flops", "error-params", "error-activations", "activations-flops"}
    fitted = [f for f, v in out["families"].items() if v["fit"] is not None]
    assert fitted
    for f in fitted:  # each training is a marker: 3 fitted points and 1 held-out point, 2 seeds each
        n = len(out["families"][f]["ladder"])
        assert _drawn(plots["error-flops"], f"{f} (held out)") == 2
        trace = [t for t in plots["error-flops"]["traces"] if t["name"] == f][0]
        assert trace["drawn"] == trace["n"] == 2 * (n - 1)
    # a fitted curve and its band per fitted family
    assert plots["error-flops"]["lines"] >= 2 * len(fitted)
    rows = browser.eval("document.querySelectorAll('table.ladder tbody tr').length")
    assert rows == sum(len(v["ladder"]) for v in out["families"].values())
    assert browser.eval("document.querySelectorAll('table.fits tbody tr').length") == len(fitted)
    _no_overlaps(browser)
    assert browser.screenshot(tmp_path / "scale.png").stat().st_size > 10_000


def test_the_fidelity_page_renders_scatters_and_tau_against_cost_offline(browser, tmp_path):
    # a real (tiny) fidelity study: 5 architectures, a reference with 2 seeds and two proxies, synthetic data
    from click.testing import CliRunner

    from mvsearch.cli.main import main
    from tests.test_fidelity import FAST, PROXY

    page = tmp_path / "fidelity.html"
    r = CliRunner().invoke(main, ["fidelity", *FAST, "--proxy", PROXY, "--proxy", "train_samples=64", "--storage",
                                  f"sqlite:///{tmp_path / 'f.db'}", "--json", "-o", str(page)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    plots = _visit(browser, page)
    _clean(browser)
    assert set(plots) == {"tau-cost", "scatter-0", "scatter-1"}
    for i, p in enumerate(out["proxies"]):  # one marker per architecture, all five drawn
        scatter = plots[f"scatter-{i}"]
        assert sum(t["drawn"] for t in scatter["traces"]) == sum(t["n"] for t in scatter["traces"]) == 5
        title = browser.eval(f"document.getElementById('plot-scatter-{i}').querySelector('text.gtitle').textContent")
        assert f"tau = {p['tau']['value']:.2f}" in title, title
    assert _drawn(plots["tau-cost"], "proxies") == 2
    lines = {t["name"].split(" (")[0] for t in plots["tau-cost"]["traces"] if t["name"] != "proxies (95% interval)"}
    assert lines == {"FLOPs alone", "params alone", "ceiling: reference seed 0 vs 1"}
    bars = browser.eval("document.getElementById('plot-tau-cost').querySelectorAll('g.errorbar').length")
    assert bars == 2  # each proxy's tau with its interval
    rows = browser.eval("document.querySelectorAll('table.archs tbody tr').length")
    assert rows == 5
    assert browser.eval("document.querySelectorAll('table.settings tbody tr').length") == 3
    _no_overlaps(browser)
    assert browser.screenshot(tmp_path / "fidelity.png").stat().st_size > 10_000


def _validated(name: str, storage: str, k: int = 4) -> dict[str, float]:
    """Add ``NAME@validate`` to a study: the ``k`` most accurate completed trials and the baselines
    retrained (2 seeds each, 2,048 validation images), as `mvsearch validate` stores them; ref -> mean."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from mvsearch.proxy.settings import ProxySettings
    from mvsearch.search.record import StudyRecord, TrialRecord
    from mvsearch.search.storage import open_search
    from mvsearch.search.trainings import point_key

    setting = ProxySettings(data="synthetic:10", resolution=32, epochs=8, train_samples=4096, val_samples=2048)
    search = open_search(name, storage)
    done = sorted((r for r in search.records() if r.state == "COMPLETE" and r.accuracy is not None),
                  key=lambda r: -r.accuracy)
    chosen = [r for r in done if not r.baseline][:k] + [r for r in done if r.baseline]
    v = optuna.create_study(study_name=f"{name}@validate", storage=storage, direction="maximize")
    for key, val in StudyRecord(search=name, tier="validate", proxy=setting.to_dict(),
                                validate={"proxy": setting.to_dict(), "seeds": 2, "top": k}).to_attrs().items():
        v.set_user_attr(key, val)
    means = {}
    for i, r in enumerate(chosen):
        accs = [0.80 + 0.01 * ((i * 7) % 5), 0.81 + 0.01 * ((i * 3) % 4)]  # another order than the proxy's
        for seed, acc in enumerate(accs):
            rec = TrialRecord(point=point_key(r.arch, r.resolution[0], setting), seed=seed, val_samples=2048)
            v.add_trial(create_trial(state=TrialState.COMPLETE, value=acc,
                                     user_attrs=rec.to_attrs("point", "seed", "val_samples")))
        means[r.ref] = sum(accs) / 2
    return means


def test_a_report_by_validated_accuracy_renders_the_validation_section_offline(browser, tmp_path):
    name, storage = make_study(tmp_path, "val")
    means = _validated(name, storage)
    path, rep = write_report(name, storage, tmp_path / "validated.html", by="validated")
    plots = _visit(browser, path)
    _clean(browser)
    searched = sum(1 for ref in means if ref not in ("0", "1"))  # trials 0 and 1 are the baselines
    assert _drawn(plots["pareto-flops"], "completed") == searched  # only validated trials are plotted
    assert _drawn(plots["pareto-flops"], "paper presets") == 2
    assert _bars(plots["pareto-flops"], "completed") == searched  # each with its 95% interval
    rows = browser.eval("document.querySelectorAll('table.validated tbody tr').length")
    assert rows == len(means)
    titles = browser.eval("Array.from(document.querySelectorAll('section h2')).map(h => h.textContent)")
    assert "Validation: the winners retrained longer" in titles
    assert "Pareto front: validated accuracy vs FLOPs" in titles
    text = browser.eval("document.querySelector('#validation').textContent")
    assert "mobilevit_xs" in text and "Kendall tau" in text
    _no_overlaps(browser)
