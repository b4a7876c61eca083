#!/usr/bin/env python3
"""End-to-end test of the Ignis web UI in a real headless Chromium.

Loads its own data into an (empty) Ignis server over HTTP, then drives the UI
with Selenium and checks real outcomes against the fixtures' ground truth:
the flame graph, the table, zoom, search, sandwich, diff colors, URL round
trip and history, empty and error states, exports, tenancy, and render
performance on a flame graph of more than 20 000 nodes.

  python3 integration/scripts/ui_test.py --url http://127.0.0.1:4040 \
      --fixtures /work/shared/fixtures --screenshots /tmp/shots [--bench-out bench.json]

Needs /usr/bin/chromium, /usr/bin/chromedriver and selenium
(integration/scripts/setup-ui-test.sh installs them). `--load-only` loads the
data and exits (handy while developing the UI).
Exit code 0 only if every check passed.
"""

import argparse
import base64
import gzip
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PERF_BOUND_MS = 500.0

# ---------------------------------------------------------------------------
# Checks


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, name, ok, detail=""):
        detail = " | ".join(str(detail).split("\n"))
        if ok:
            self.passed += 1
            print(f"PASS  {name}" + (f": {detail}" if detail else ""), flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def run(self, name, fn):
        """Runs a group of checks; an exception fails the group, not the run."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report and go on
            import traceback

            traceback.print_exc()
            self.check(f"{name} (completed without error)", False, f"{type(e).__name__}: {e}")


# ---------------------------------------------------------------------------
# Data loading over HTTP


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def with_time_nanos(pprof, ns):
    """The pprof with time_nanos (field 9) set to ns: a later field wins in protobuf."""
    if pprof[:2] == b"\x1f\x8b":
        pprof = gzip.decompress(pprof)
    return gzip.compress(pprof + b"\x48" + _varint(ns))


def multipart_part(body, content_type, name):
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, _, data = part.partition(b"\r\n\r\n")
        if f'name="{name}"'.encode() in head:
            return data[: -2] if data.endswith(b"\r\n") else data
    raise ValueError(f"no part {name!r}")


def http(method, url, body=None, headers=None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ingest(base, name, body, fmt, from_s, until_s, sample_rate=None, ctype="application/octet-stream", tenant=None, token=None):
    q = {"name": name, "format": fmt, "from": str(from_s), "until": str(until_s)}
    if sample_rate is not None:
        q["sampleRate"] = str(sample_rate)
    headers = {"Content-Type": ctype}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, resp = http("POST", f"{base}/ingest?{urllib.parse.urlencode(q)}", body, headers)
    if status != 200:
        raise RuntimeError(f"ingest {name}: HTTP {status}: {resp[:300]!r}")


def connect(base, method, msg):
    status, resp = http("POST", f"{base}/querier.v1.QuerierService/{method}", json.dumps(msg).encode(), {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"{method}: HTTP {status}: {resp[:300]!r}")
    return json.loads(resp)


DIFF_V1 = """main;handler.serve;handler.parse 100
main;handler.serve;handler.compute 300
main;handler.serve;handler.render 100
main;runtime.gc 100
"""
DIFF_V2 = """main;handler.serve;handler.parse 100
main;handler.serve;handler.compute 100
main;handler.serve;handler.render 400
main;handler.serve;handler.cache_lookup 50
main;runtime.gc 100
"""


def big_folded(lines=7000, seed=7):
    """A synthetic profile whose flame graph has more than 20 000 nodes."""
    rnd = random.Random(seed)
    out = []
    for i in range(lines):
        a, b = i % 20, i % 137
        stack = ["main", f"svc{a}.Handle", f"svc{a}.step{b % 7}", f"pkg{b}.work{i % 997}", f"pkg{b}.leaf{i}", f"pkg{b}.inner{i}"]
        out.append(";".join(stack) + f" {rnd.randint(1, 50)}")
    return "\n".join(out) + "\n"


def tree_nodes(folded_text):
    """Node count of the flame graph of folded text (the root included)."""
    root = {}
    n = 1
    for line in folded_text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.strip() or not count.strip().isdigit():
            continue
        node = root
        for f in stack.split(";"):
            if f not in node:
                node[f] = {}
                n += 1
            node = node[f]
    return n


def folded_search_truth(text, query):
    """Frames matching `query` in the flame graph of folded text, and the samples under them."""
    q = query.lower()
    root = {}
    total = 0
    hit = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.strip().isdigit():
            continue
        c = int(count)
        total += c
        frames = [f for f in stack.split(";")] if stack.strip() else []
        if any(q in f.lower() for f in frames):
            hit += c
        node = root
        for f in frames:
            node = node.setdefault(f, {})

    def count_nodes(node):
        return sum((1 if q in k.lower() else 0) + count_nodes(v) for k, v in node.items())

    return {"nodes": count_nodes(root), "samples": hit, "total": total}


def folded_top_self(text):
    self_ = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.strip() or not count.strip().isdigit():
            continue
        leaf = stack.split(";")[-1]
        self_[leaf] = self_.get(leaf, 0) + int(count)
    return max(self_.items(), key=lambda kv: kv[1])


def load_data(base, fixtures):
    """Loads the test profiles, timestamped in the last few minutes; returns ground truth."""
    now = int(time.time())
    frm, until = now - 180, now - 170
    ns = frm * 1_000_000_000
    truth = {}
    # 1. The Go CPU profile (net/http/pprof), version 1. Its own time_nanos is
    #    kept by the server (from= is only a fallback), so rewrite it to now.
    go_cpu = open(os.path.join(fixtures, "go", "cpu.pb.gz"), "rb").read()
    ingest(base, 'ui.go.app{version=1}', with_time_nanos(go_cpu, ns), "pprof", frm, until)
    truth["go"] = json.load(open(os.path.join(fixtures, "go", "cpu.expected.json")))
    # 2. A different Go CPU profile (pyroscope-go SDK capture) as version 2.
    d = os.path.join(fixtures, "go-sdk", "ingest-multipart-1.2.8")
    meta = json.load(open(os.path.join(d, "req-0004.meta.json")))
    ctype = dict(meta["headers"])["Content-Type"]
    prof = multipart_part(open(os.path.join(d, "req-0004.bin"), "rb").read(), ctype, "profile")
    ingest(base, 'ui.go.app{version=2}', with_time_nanos(prof, ns + 1_000_000_000), "pprof", frm, until)
    truth["go2"] = json.load(open(os.path.join(d, "req-0004.expected.json")))
    # 3. py-spy folded output (has `fib`), 100 Hz.
    pyspy = open(os.path.join(fixtures, "other-producers", "py-spy", "pyspy.folded.txt")).read()
    ingest(base, "ui.py.app.cpu{version=1}", pyspy.encode(), "folded", frm, until, sample_rate=100, ctype="text/plain")
    truth["pyspy"] = {"text": pyspy, "top_self": folded_top_self(pyspy), "fib": folded_search_truth(pyspy, "fib")}
    # 4. A crafted diff: render grew, compute shrank, cache_lookup is new.
    ingest(base, "ui.diff.app.cpu{version=1}", DIFF_V1.encode(), "folded", frm, until, sample_rate=100, ctype="text/plain")
    ingest(base, "ui.diff.app.cpu{version=2}", DIFF_V2.encode(), "folded", frm, until, sample_rate=100, ctype="text/plain")
    # 5. The big one, for the performance check.
    big = big_folded()
    ingest(base, "ui.big.app.cpu", big.encode(), "folded", frm, until, sample_rate=100, ctype="text/plain")
    truth["big_nodes"] = tree_nodes(big)
    # The data is queryable (acknowledged means stored).
    start, end = (now - 3600) * 1000, (now + 60) * 1000
    deadline = time.time() + 20
    while True:
        types = connect(base, "ProfileTypes", {"start": start, "end": end})
        ids = [t["ID"] for t in types.get("profileTypes", [])]
        if CPU in ids:
            break
        if time.time() > deadline:
            raise RuntimeError(f"loaded data not queryable; profile types: {ids}")
        time.sleep(0.5)
    truth["profile_types"] = ids
    return truth


# ---------------------------------------------------------------------------
# Browser


def make_driver(download_dir, width=1440, height=1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run "
              "--disable-background-networking --disable-component-update --disable-sync "
              "--disable-dev-shm-usage --force-device-scale-factor=1").split():
        opts.add_argument(a)
    profile_dir = tempfile.mkdtemp(prefix="ignis-ui-chrome-")
    opts.add_argument("--user-data-dir=" + profile_dir)
    opts.add_argument(f"--window-size={width},{height}")
    opts.add_experimental_option("prefs", {
        "download.default_directory": download_dir,
        "download.prompt_for_download": False,
    })
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
    d.set_page_load_timeout(30)
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": download_dir})
    d.ignis_profile_dir = profile_dir
    return d


class UI:
    def __init__(self, driver, base, shots):
        self.d = driver
        self.base = base
        self.shots = shots

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait(self, cond_js, timeout=20, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.js(f"return !!({cond_js})"):
                    return True
            except Exception:  # noqa: BLE001 - page still loading
                pass
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what}: {cond_js}")

    def idle(self, timeout=20):
        time.sleep(0.15)
        self.wait("window.__ignis && window.__ignis.idle()", timeout, "the UI to be idle")
        time.sleep(0.1)

    def open(self, params):
        q = urllib.parse.urlencode(params)
        self.d.get(f"{self.base}/" + (f"?{q}" if q else ""))
        self.idle()

    def state(self):
        return self.js("return window.__ignis.state")

    def model(self, which="main"):
        return self.js("return window.__ignis.model(arguments[0])", which)

    def frames(self, name, which="main"):
        return self.js("return window.__ignis.frames(arguments[0], arguments[1])", name, which)

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : null", css)

    def visible(self, css):
        return self.js(
            "const e = document.querySelector(arguments[0]); if (!e) return false;"
            "const r = e.getBoundingClientRect(); return !e.closest('[hidden]') && r.width > 0 && r.height > 0;", css)

    def scroll_to(self, css):
        self.js("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", css)
        time.sleep(0.1)

    def mouse(self, x, y, click=False):
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        ab = ActionBuilder(self.d)
        ab.pointer_action.move_to_location(int(x), int(y))
        if click:
            ab.pointer_action.click()
        ab.perform()
        ActionChains(self.d).reset_actions()

    def frame_center(self, name, which="main"):
        fr = [f for f in self.frames(name, which) if f["visible"]]
        if not fr:
            return None, None
        f = fr[0]
        return f, (f["x"] + min(f["w"] / 2, 40), f["y"] + f["h"] / 2)

    def screenshot(self, name, max_height=2600):
        path = os.path.join(self.shots, f"{name}.png")
        h = min(max_height, int(self.js("return Math.ceil(document.documentElement.scrollHeight)")))
        w = int(self.js("return document.documentElement.clientWidth"))
        self.js("window.scrollTo(0, 0)")
        data = self.d.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1},
        })
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))
        return path

    def console_errors(self):
        try:
            return [l for l in self.d.get_log("browser") if l["level"] == "SEVERE"]
        except Exception:  # noqa: BLE001
            return []


# ---------------------------------------------------------------------------
# The checks


def fmt_seconds(ns):
    """As the UI formats seconds: 3 significant digits."""
    s = ns / 1e9
    if s >= 100:
        return f"{s:.0f} s"
    if s >= 10:
        return f"{s:.1f}".rstrip("0").rstrip(".") + " s"
    return f"{s:.2f}".rstrip("0").rstrip(".") + " s"


def go_params(**extra):
    p = {"service": "ui.go.app", "type": CPU, "sel": 'version="1"'}
    p.update(extra)
    return p


def check_go_flamegraph(ui, c, truth, docs):
    go = truth["go"]
    exp_total = go["value_sums"]["cpu/nanoseconds"]
    exp_name, exp_self = go["top_self"]["cpu/nanoseconds"][0]
    ui.open(go_params(view="both"))
    m = ui.model()
    c.check("go: flame graph total equals the profile's cpu/nanoseconds sum", m and m["total"] == exp_total,
            f"{m and m['total']} vs {exp_total}")
    leaf = ui.js("return window.__ignis.widestLeaf()")
    c.check("go: widest leaf is the expected top self function", leaf and leaf["name"] == exp_name, f"{leaf}")
    c.check("go: its self value equals expected.json", leaf and leaf["self"] == exp_self, f"{leaf and leaf['self']} vs {exp_self}")
    # Tooltip: hover the frame and read the numbers the page shows.
    ui.scroll_to("#explore-flame")
    f, pt = ui.frame_center(exp_name)
    c.check("go: the top self frame is drawn", f is not None)
    if f:
        ui.mouse(*pt)
        time.sleep(0.2)
        tip = ui.js("return [...document.querySelectorAll('.flame-tooltip:not([hidden]) .tt-name, .flame-tooltip:not([hidden]) .tt-row')]"
                    ".map(r => r.classList.contains('tt-row') ? r.children[0].textContent + ': ' + r.children[1].textContent : r.textContent)") or []
        pct = f"{exp_self / exp_total * 100:.2f}%"
        want_self = f"Self: {fmt_seconds(exp_self)} ({pct})"
        want_total = f"Total: {fmt_seconds(f['total'])} ({f['total'] / exp_total * 100:.2f}%)"
        c.check("go: tooltip names the frame", tip and tip[0] == exp_name, " | ".join(tip))
        c.check("go: tooltip shows self 5.64 s of 8.71 s, absolute and percent", want_self in tip, f"want {want_self!r} in {tip}")
        c.check("go: tooltip shows the frame's total", want_total in tip, f"want {want_total!r} in {tip}")
    # Table: top self row and a total that must not double count.
    row = ui.js("const r = document.querySelector('#explore-table tbody tr'); return r && {name: r.dataset.name, self: +r.dataset.self, cells: [...r.cells].map(c => c.innerText)}")
    c.check("table: top self row is expected.json's top self", row and row["name"] == exp_name and row["self"] == exp_self, f"{row}")
    c.check("table: top self row shows 5.64 s and its percent", row and row["cells"][1] == fmt_seconds(exp_self) and row["cells"][2] == f"{exp_self / exp_total * 100:.2f}%", f"{row and row['cells']}")
    for name, total in go["top_total"]["cpu/nanoseconds"][:3]:
        got = ui.js("const r = document.querySelector(`#explore-table tbody tr[data-name=\"${arguments[0]}\"]`); return r && +r.dataset.total", name)
        c.check(f"table: total of {name} matches expected.json (counted once per stack)", got == total, f"{got} vs {total}")
    ui.screenshot("explore")
    # Zoom: click the frame.
    before = ui.model()
    f, pt = ui.frame_center(exp_name)
    ui.mouse(*pt, click=True)
    ui.idle()
    after = ui.model()
    crumb = ui.js("const b = [...document.querySelectorAll('#flame-breadcrumb .crumb')]; return b.length ? b[b.length - 1].innerText : null")
    c.check("zoom: clicking the frame zooms to it", after["focus"] == exp_name and before["focus"] == "total", f"{before['focus']} -> {after['focus']}")
    c.check("zoom: the breadcrumb ends at the frame", crumb == exp_name, f"{crumb}")
    c.check("zoom: the frame now spans the full width", abs(after["focusWidth"] - after["canvasWidth"]) < 1.5, f"{after['focusWidth']:.1f} of {after['canvasWidth']} px")
    row_sel = ui.js("const r = document.querySelector('#explore-table tbody tr.selected'); return r && r.dataset.name")
    c.check("sync: the frame click selects its row in the table", row_sel == exp_name, f"{row_sel}")
    # URL round trip and history.
    url = ui.d.current_url
    st = ui.state()
    c.check("url: zoom is recorded in the URL", "focus=" in url and st["focus"].endswith(exp_name), url)
    ui.d.get(url)
    ui.idle()
    st2 = ui.state()
    m2 = ui.model()
    c.check("url: reloading the URL gives the same view", st2 == st and m2["focus"] == exp_name and m2["total"] == exp_total, f"{st2.get('focus')} / {m2['focus']}")
    ui.d.back()
    ui.idle()
    c.check("history: back returns to the unzoomed graph", ui.model()["focus"] == "total", ui.d.current_url)
    ui.d.forward()
    ui.idle()
    c.check("history: forward zooms again", ui.model()["focus"] == exp_name, ui.d.current_url)
    # Table row → flame graph: click a row, its widest frame gets the focus.
    ui.open(go_params(view="both"))
    target = "main.burnFib"
    ui.js("document.querySelector(`#explore-table tbody tr[data-name=\"${arguments[0]}\"]`).click()", target)
    ui.idle()
    m3 = ui.model()
    c.check("sync: clicking a table row focuses the function in the flame graph", m3["focus"] == target and ui.state()["fn"] == target, f"{m3['focus']}")
    # Keyboard: focus the canvas, go down to the widest child, Enter zooms.
    ui.open(go_params(view="flamegraph"))
    from selenium.webdriver.common.keys import Keys

    canvas = ui.d.find_element("css selector", "#flame-graph canvas")
    ui.js("arguments[0].focus()", canvas)
    canvas.send_keys(Keys.ARROW_DOWN, Keys.ENTER)
    ui.idle()
    mk = ui.model()
    c.check("keyboard: arrow down + Enter zooms into the widest child", mk["focus"] == go["top_total"]["cpu/nanoseconds"][0][0], f"{mk['focus']}")
    canvas.send_keys(Keys.HOME)
    ui.idle()
    c.check("keyboard: Home resets the zoom", ui.model()["focus"] == "total")
    # Orientation: bottom-up puts the root at the bottom.
    ui.js("document.querySelector('#explore-flame [data-orient=flame]').click()")
    ui.idle()
    root = ui.frames("total")[0]
    m4 = ui.model()
    c.check("orientation: bottom-up draws the root on the last row", m4["orientation"] == "flame" and ui.state()["orient"] == "flame" and root["y"] > ui.frames(go["top_total"]["cpu/nanoseconds"][0][0])[0]["y"], f"root y {root['y']}")
    # The flame graph screenshot (all versions of the Go app).
    ui.open({"service": "ui.go.app", "type": CPU, "view": "flamegraph"})
    path = ui.screenshot("flamegraph", max_height=1500)
    if docs:
        shutil.copy(path, os.path.join(docs, "flamegraph.png"))
    ui.open(go_params(view="table"))
    rows = ui.js("return document.querySelectorAll('#explore-table tbody tr').length")
    c.check("table view: lists the functions", rows >= 20, f"{rows} rows")
    # Sort by total, filter.
    ui.js("[...document.querySelectorAll('#explore-table th button')].find(b => b.innerText.startsWith('Total')).click()")
    ui.idle()
    first = ui.js("return document.querySelector('#explore-table tbody tr').dataset.name")
    c.check("table: sorting by total puts the top total first", first == go["top_total"]["cpu/nanoseconds"][0][0] and ui.state()["sort"] == "total", f"{first}")
    ui.screenshot("table", max_height=1500)
    filt = ui.d.find_element("css selector", "#explore-filter")
    filt.send_keys("sha256")
    time.sleep(0.5)
    ui.idle()
    names = ui.js("return [...document.querySelectorAll('#explore-table tbody tr')].map(r => r.dataset.name)")
    c.check("table: the filter keeps matching functions only", names and all("sha256" in n for n in names), f"{len(names)} rows")


def check_sandwich(ui, c, truth):
    fn = "runtime.memmove"
    ui.open({"service": "ui.go.app", "type": CPU, "view": "sandwich", "fn": fn})
    sw = ui.js("return window.__ignis.sandwich()")
    row_total = ui.js("const r = document.querySelector(`#sandwich-table tbody tr[data-name=\"${arguments[0]}\"]`); return r && +r.dataset.total", fn)
    c.check("sandwich: shows the chosen function", sw and sw["fn"] == fn and ui.text("#sandwich-title .sandwich-fn") == fn, f"{sw}")
    c.check("sandwich: callers and callees total equal the function's total", sw and sw["total"] == row_total, f"{sw and sw['total']} vs {row_total}")
    callers = ui.model("callers")
    callees = ui.model("callees")
    c.check("sandwich: callers graph is inverted (root at the bottom) and has callers", callers and callers["orientation"] == "flame" and callers["nodes"] > 1 and callers["focus"] == fn, f"{callers and (callers['orientation'], callers['nodes'])}")
    c.check("sandwich: callees graph is top-down", callees and callees["orientation"] == "icicle" and callees["focus"] == fn)
    # Choosing another function in the table.
    other = "crypto/sha256.block"
    ui.js("document.querySelector(`#sandwich-table tbody tr[data-name=\"${arguments[0]}\"]`).click()", other)
    ui.idle()
    c.check("sandwich: a table click switches the function", ui.js("return window.__ignis.sandwich().fn") == other and ui.state()["fn"] == other)
    ui.screenshot("sandwich", max_height=1800)


def check_search(ui, c, truth):
    py = truth["pyspy"]
    fib = py["fib"]
    ui.open({"service": "ui.py.app", "type": CPU, "view": "both", "search": "fib"})
    s = ui.js("return window.__ignis.search()")
    info = ui.text("#flame-search-info") or ""
    share = f"{fib['samples'] / fib['total'] * 100:.2f}%"
    c.check("search: highlighted frame count matches the data", s and s["nodes"] == fib["nodes"], f"{s and s['nodes']} vs {fib['nodes']}")
    c.check("search: displayed share of total matches the data", share in info, f"want {share} in {info!r}")
    c.check("search: share value counts nested (recursive) matches once", s and s["value"] == fib["samples"] * 10_000_000, f"{s and s['value']} vs {fib['samples'] * 10_000_000}")
    # Recursion: fib is up to 20 frames deep; its total counts each stack once.
    fib4 = "fib (busy.py:4)"
    want = sum(int(l.rpartition(" ")[2]) for l in py["text"].splitlines() if fib4 in l.rpartition(" ")[0].split(";")) * 10_000_000
    got = ui.js("const r = document.querySelector(`#explore-table tbody tr[data-name=\"${arguments[0]}\"]`); return r && +r.dataset.total", fib4)
    c.check("table: a recursive function's total counts each stack once", got == want, f"{got} vs {want}")
    name, samples = py["top_self"]
    row = ui.js("const r = document.querySelector('#explore-table tbody tr'); return r && {name: r.dataset.name, self: +r.dataset.self}")
    c.check("table (py-spy): top self row matches the fixture's ground truth", row and row["name"] == name and row["self"] == samples * 10_000_000, f"{row} vs {name} {samples}")
    # Typing in the search field updates the URL (replace, no history spam).
    box = ui.d.find_element("css selector", "#flame-search")
    box.clear()
    box.send_keys("slow_loop")
    time.sleep(0.5)
    ui.idle()
    c.check("search: typing updates the highlight and the URL", ui.js("return window.__ignis.search().nodes") == 2 and ui.state()["search"] == "slow_loop")
    ui.screenshot("search", max_height=1500)


def check_diff(ui, c, truth, docs):
    ui.open({"service": "ui.diff.app", "type": CPU, "view": "diff", "lsel": 'version="1"', "rsel": 'version="2"'})
    m = ui.model()
    c.check("diff: both sides loaded (600 vs 750 samples)", m and m["diff"] and m["leftTicks"] == 600 * 10_000_000 and m["rightTicks"] == 750 * 10_000_000, f"{m and (m['leftTicks'], m['rightTicks'])}")
    expect = {"handler.render": "grew", "handler.cache_lookup": "grew", "handler.compute": "shrank", "handler.parse": "shrank", "handler.serve": "same"}
    for name, cls in expect.items():
        got = ui.js("return window.__ignis.diffClass(arguments[0])", name)
        c.check(f"diff: {name} is colored as {cls}", got == cls, f"{got}")
    # The rendered colors: red for grew, green for shrank.
    for name, channel in (("handler.render", "red"), ("handler.compute", "green")):
        f, pt = ui.frame_center(name)
        px = None
        if f:
            px = ui.js("""
              const g = window.__ignis.app.diffView.flame.graph; const r = g.frameRect(arguments[0]);
              const dpr = g.canvas.width / g.canvas.clientWidth;
              const d = g.ctx.getImageData(Math.round((r.x + 2) * dpr), Math.round((r.y + 3) * dpr), 1, 1).data; return [d[0], d[1], d[2]];""", f["id"])
        ok = px is not None and (px[0] > px[1] + 40 if channel == "red" else px[1] > px[0] + 40)
        c.check(f"diff: {name} is drawn {channel}", ok, f"rgb{tuple(px) if px else None}")
    rows = ui.js("return [...document.querySelectorAll('#diff-table tbody tr')].map(r => ({name: r.dataset.name, change: r.dataset.change, cells: [...r.cells].map(c => c.innerText)}))")
    by = {r["name"]: r for r in rows}
    c.check("diff table: sorted by change (largest first)", rows and rows[0]["name"] in ("handler.compute", "handler.render"), f"{[r['name'] for r in rows[:3]]}")
    c.check("diff table: render +36.67 pp (16.67% → 53.33%)", "handler.render" in by and by["handler.render"]["cells"][3] == "+36.67 pp" and by["handler.render"]["change"] == "grew", f"{by.get('handler.render')}")
    c.check("diff table: compute −36.67 pp (50.00% → 13.33%)", "handler.compute" in by and by["handler.compute"]["cells"][3] == "-36.67 pp" and by["handler.compute"]["change"] == "shrank", f"{by.get('handler.compute')}")
    c.check("diff: the legend is shown", ui.visible("#diff-legend") and "grew" in (ui.text("#diff-legend") or ""))
    url = ui.d.current_url
    ui.d.get(url)
    ui.idle()
    c.check("diff: URL round trip keeps both selectors", ui.state()["lsel"] == 'version="1"' and ui.state()["rsel"] == 'version="2"' and ui.model()["diff"])
    ui.screenshot("diff-crafted", max_height=1500)
    # A real diff for the docs: the two Go CPU profiles.
    ui.open({"service": "ui.go.app", "type": CPU, "view": "diff", "lsel": 'version="1"', "rsel": 'version="2"'})
    m = ui.model()
    c.check("diff (go): the two Go profiles' totals", m and m["leftTicks"] == truth["go"]["value_sums"]["cpu/nanoseconds"] and m["rightTicks"] == 14_130_000_000, f"{m and (m['leftTicks'], m['rightTicks'])}")
    path = ui.screenshot("diff", max_height=1600)
    if docs:
        shutil.copy(path, os.path.join(docs, "diff.png"))
    # Diff by time ranges: baseline before the data, comparison around it → everything new.
    now = int(time.time() * 1000)
    ui.open({"service": "ui.diff.app", "type": CPU, "view": "diff", "lfrom": str(now - 3 * 3600_000), "luntil": str(now - 2 * 3600_000), "rfrom": "now-1h", "runtil": "now"})
    m = ui.model()
    c.check("diff by time range: empty baseline, comparison has the data", m and m["leftTicks"] == 0 and m["rightTicks"] == 1350 * 10_000_000, f"{m and (m['leftTicks'], m['rightTicks'])}")


def check_states(ui, c, truth):
    # Empty selector → empty state with a hint.
    ui.open(go_params(sel='version="no-such-version"', view="both"))
    t = ui.text("#explore-flame .empty-state") or ""
    c.check("empty: an empty selector shows the empty state", "No data for this selector in this range" in t, t.replace("\n", " | "))
    c.check("empty: with a hint (widen the range / check the selector)", "Widen the time range" in t and "selector" in t)
    ui.screenshot("empty", max_height=1100)
    # Bad selector → the server's error in the page.
    ui.open(go_params(sel='version="1', view="both"))
    errs = ui.js("return window.__ignis.errors()")
    banner = ui.text("#errors") or ""
    api = [e for e in errs if e["status"] == 400]
    c.check("error: a bad selector's 400 is reported", bool(api), f"{errs}")
    c.check("error: the API message is shown in the page", api and api[0]["message"] in banner and ui.visible("#errors"), banner.replace("\n", " | "))
    ui.screenshot("error", max_height=1100)
    # No data at all in a range.
    ui.open({"from": "now-7d", "until": "now-6d"})
    ui.wait("document.querySelector('#explore-flame .empty-action')", 10, "the jump button")
    t = ui.text("#explore-flame .empty-state") or ""
    c.check("empty: a range without profiles says so, and where the data is (GetProfileStats)", "No profiles in this time range" in t and "This tenant has profiles from" in t, t)
    ui.js("document.querySelector('#explore-flame .empty-action').click()")
    ui.idle()
    m = ui.model()
    c.check("empty: the jump button shows the newest profiles", m and m["total"] > 0 and ui.state()["from"].isdigit(), f"{ui.state()['from']}..{ui.state()['until']}")
    # A tenant in the URL: the field shows and the header is sent (another tenant has no data).
    ui.open({"tenant": "ui-test-other-tenant"})
    c.check("tenant: a tenant in the URL shows the tenant field", ui.visible("#tenant-field") and ui.js("return document.querySelector('#tenant').value") == "ui-test-other-tenant")
    t = ui.text("#explore-flame .empty-state") or ""
    c.check("tenant: requests carry X-Scope-OrgID (the other tenant sees no data)", "No profiles in this time range" in t, t.replace("\n", " | "))
    ui.open({})
    c.check("tenant: without one, the field stays hidden on a single-tenant server", not ui.visible("#tenant-field"))


def check_autocomplete(ui, c):
    from selenium.webdriver.common.keys import Keys

    ui.open({"service": "ui.go.app", "type": CPU, "view": "flamegraph"})
    box = ui.d.find_element("css selector", "#selector")
    box.click()
    box.send_keys("ver")
    ui.wait("document.querySelector('.querybar .suggestions:not([hidden]) li')", 10, "name suggestions")
    names = ui.js("return [...document.querySelectorAll('.querybar .suggestions li')].map(l => l.innerText)")
    c.check("autocomplete: label names are suggested", "version" in names, f"{names}")
    box.send_keys(Keys.ARROW_DOWN, Keys.ENTER)
    ui.wait("document.querySelector('.querybar .suggestions:not([hidden]) li.sugg-value')", 10, "value suggestions")
    values = ui.js("return [...document.querySelectorAll('.querybar .suggestions li')].map(l => l.innerText)")
    c.check("autocomplete: the label's values are suggested", values == ["1", "2"], f"{values}")
    box.send_keys(Keys.ARROW_DOWN, Keys.ENTER)
    c.check("autocomplete: accepting a value completes the matcher", box.get_attribute("value") == 'version="1"', box.get_attribute("value"))
    box.send_keys(Keys.ENTER)
    ui.idle()
    c.check("autocomplete: Enter applies the selector", ui.state()["sel"] == 'version="1"' and ui.model()["total"] == 8_710_000_000)
    # Group by a label: one series per value.
    ui.open({"service": "ui.go.app", "type": CPU, "view": "flamegraph", "groupBy": "version"})
    legend = ui.text("#chart-legend") or ""
    c.check("chart: group by version draws one series per value", "version=1" in legend and "version=2" in legend, legend)
    paths = ui.js("return document.querySelectorAll('#chart path[fill=none]').length")
    c.check("chart: two lines", paths == 2, f"{paths}")
    # Drag on the chart zooms the time range.
    box = ui.js("const r = document.querySelector('#chart .chart-overlay').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]")
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    ab = ActionBuilder(ui.d)
    y = box[1] + box[3] / 2
    ab.pointer_action.move_to_location(int(box[0] + box[2] * 0.5), int(y)).pointer_down()
    ab.pointer_action.move_to_location(int(box[0] + box[2] * 0.75), int(y))
    ab.pointer_action.move_to_location(int(box[0] + box[2] * 0.995), int(y)).pointer_up()
    ab.perform()
    ui.idle()
    st = ui.state()
    c.check("chart: dragging sets an absolute time range", st["from"].isdigit() and st["until"].isdigit() and int(st["until"]) - int(st["from"]) < 3600_000, f"{st['from']}..{st['until']}")


def check_exports(ui, c, dl, fixtures):
    for f in os.listdir(dl):
        os.remove(os.path.join(dl, f))
    ui.open(go_params(view="flamegraph"))

    def wait_file(name, timeout=15):
        p = os.path.join(dl, name)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(p) and not os.path.exists(p + ".crdownload") and os.path.getsize(p) > 0:
                return p
            time.sleep(0.2)
        return None

    ui.js("document.querySelector('#export-menu').open = true")
    ui.js("document.querySelector('#export-pprof').click()")
    p = wait_file("ui.go.app.pb")
    ok = False
    detail = "no file"
    if p:
        sys.dont_write_bytecode = True  # leave the fixtures directory untouched
        sys.path.insert(0, os.path.join(fixtures, "tools"))
        import pb  # the fixtures' hand-written pprof decoder

        prof = pb.parse_profile(open(p, "rb").read())
        total = sum(s["value"][0] for s in prof["sample"])
        st = prof["string_table"]
        ok = total == 8_710_000_000 and st[prof["sample_type"][0]["type"]] == "cpu"
        detail = f"{os.path.getsize(p)} bytes, total {total}"
    c.check("export: pprof downloads as <service>.pb with the selection's samples", ok, detail)
    ui.js("document.querySelector('#export-menu').open = true")
    ui.js("document.querySelector('#export-json').click()")
    p = wait_file("ui.go.app.json")
    ok = False
    if p:
        j = json.load(open(p))
        ok = int(j["flamegraph"]["total"]) == 8_710_000_000
    c.check("export: JSON downloads the flamegraph response", ok, p or "no file")
    href = ui.js("document.querySelector('#export-menu').open = true; const a = document.querySelector('#export-svg'); a.dispatchEvent(new Event('focus')); return a.getAttribute('href')")
    c.check("export: the SVG link points at the server's render endpoint", href and href.startswith("/pyroscope/render?") and "format=svg" in href, href)
    ui.js("document.querySelector('#export-svg').click()")
    time.sleep(1.5)
    p = wait_file("ui.go.app.svg", timeout=3)
    errs = [e for e in ui.js("return window.__ignis.errors()") if e["source"] in ("SVG export", "export")]
    svg = open(p, "rb").read() if p else b""
    c.check("export: SVG downloaded (rendered by the server)", b"<svg" in svg[:400], svg[:60] or f"no file; page errors: {errs}")
    c.check("export: the SVG shows the hottest function", b"crypto/sha256.block" in svg, f"{len(svg)} bytes")
    ui.js("document.querySelector('#share').click()")
    time.sleep(0.3)
    note = ui.text("#notice") or ""
    c.check("share: the button copies the URL", "copied" in note.lower() or ui.d.current_url in note, note)


def check_multitenant(ui, c, url, fixtures):
    """A server that requires X-Scope-OrgID: the UI asks for a tenant, then uses it."""
    base = url.rstrip("/")
    tenant = "ui-team-a"
    now = int(time.time())
    go_cpu = open(os.path.join(fixtures, "go", "cpu.pb.gz"), "rb").read()
    ingest(base, "ui.tenant.app", with_time_nanos(go_cpu, (now - 120) * 1_000_000_000), "pprof", now - 120, now - 110, tenant=tenant)
    status, body = http("POST", f"{base}/querier.v1.QuerierService/ProfileTypes", b"{}", {"Content-Type": "application/json"})
    c.check("tenancy: the server answers 401 unauthenticated without a tenant", status == 401 and json.loads(body).get("code") == "unauthenticated", f"{status} {body[:100]!r}")
    mt = UI(ui.d, base, ui.shots)
    mt.open({})
    c.check("tenancy: the UI shows the tenant field after the 401", mt.visible("#tenant-field") and mt.visible("#tenant-hint"))
    c.check("tenancy: the 401 message is shown in the page", "no org id" in (mt.text("#errors") or ""), mt.text("#errors"))
    c.check("tenancy: the empty state asks for a tenant", "needs a tenant" in (mt.text("#explore-flame .empty-state") or ""))
    mt.screenshot("tenant-required", max_height=900)
    box = ui.d.find_element("css selector", "#tenant")
    box.send_keys(tenant + "\n")
    mt.idle()
    m = mt.model()
    c.check("tenancy: with the tenant entered, its data loads", mt.state()["tenant"] == tenant and m and m["total"] == 8_710_000_000 and not mt.visible("#errors"), f"{m and m['total']}")


def check_auth(ui, c, url, token, fixtures):
    """Authentication on: the page loads, asks for a credential in its own form
    (no browser dialog), refuses a wrong one, and with the token shows its
    tenant's data; signing out asks again."""
    base = url.rstrip("/")
    now = int(time.time())
    go_cpu = open(os.path.join(fixtures, "go", "cpu.pb.gz"), "rb").read()
    ingest(base, "ui.auth.app", with_time_nanos(go_cpu, (now - 120) * 1_000_000_000), "pprof", now - 120, now - 110, token=token)
    status, _ = http("POST", f"{base}/querier.v1.QuerierService/ProfileTypes", b"{}", {"Content-Type": "application/json"})
    c.check("auth: the API answers 401 without a credential", status == 401, f"{status}")
    au = UI(ui.d, base, ui.shots)
    au.open({})
    au.wait("!document.getElementById('login').hidden", what="the sign-in form")
    c.check("auth: the sign-in form is shown, the query views are not", au.visible("#login") and not au.visible("#main"))
    au.screenshot("sign-in", max_height=900)

    def sign_in(user, secret):
        ui.d.find_element("css selector", "#login-user").clear()
        ui.d.find_element("css selector", "#login-user").send_keys(user)
        ui.d.find_element("css selector", "#login-secret").send_keys(secret + "\n")
        au.idle()

    sign_in("", "wrong-token")
    au.wait("!document.getElementById('login-error').hidden", what="the sign-in error")
    c.check("auth: a wrong token is refused with the server's reason", au.visible("#login") and "invalid credentials" in (au.text("#login-error") or ""), au.text("#login-error"))
    sign_in("", token)
    au.wait("document.getElementById('login').hidden", what="signed in")
    au.idle()
    m = au.model()
    c.check("auth: with the token, its tenant's data loads", m and m["total"] == 8_710_000_000 and au.visible("#sign-out"), f"{m and m['total']}")
    ui.d.find_element("css selector", "#sign-out").click()
    au.wait("!document.getElementById('login').hidden", what="the sign-in form after signing out")
    c.check("auth: signing out asks for a credential again", au.visible("#login"))


def check_perf(ui, c, truth, bench_out):
    n_expected = truth["big_nodes"]
    params = {"service": "ui.big.app", "type": CPU, "view": "flamegraph", "maxNodes": "65536"}
    firsts = []
    zooms = []
    for attempt in range(3):
        ui.open(params)
        m = ui.model()
        t = ui.js("return window.__ignis.timings.flame")
        if attempt == 0:
            c.check("perf: the synthetic flame graph has > 20 000 nodes", m["nodes"] >= 20000 and m["nodes"] == n_expected, f"{m['nodes']} nodes (expected {n_expected})")
        firsts.append(t)
        # Zoom into a wide frame and back.
        for name in ("svc3.Handle", "svc3.step3", "svc11.Handle"):
            f, pt = ui.frame_center(name)
            if not f:
                continue
            ui.mouse(*pt, click=True)
            time.sleep(0.3)
            z = ui.model()["lastZoom"]
            zooms.append(z)
            ui.js("window.__ignis.app.exploreView.flame.graph.zoomTo(0)")
            ui.idle()
    first_ms = [t["firstRenderMs"] for t in firsts]
    breakdown = {k: statistics.median([t.get(k) or 0 for t in firsts]) for k in ("decodeMs", "aggregateMs", "renderMs", "toFrameMs")}
    draw_ms = [t["drawMs"] for t in firsts]
    zoom_ms = [z["ms"] for z in zooms]
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "nodes": ui.model()["nodes"],
        "first_render_ms": {"median": statistics.median(first_ms), "max": max(first_ms), "runs": first_ms,
                            "what": "JSON in hand -> model decoded, functions aggregated, flame graph drawn"},
        "first_render_breakdown_ms": breakdown,
        "first_draw_ms": {"median": statistics.median(draw_ms), "max": max(draw_ms), "runs": draw_ms, "what": "canvas draw only"},
        "frames_drawn": firsts[0]["framesDrawn"],
        "zoom_ms": {"median": statistics.median(zoom_ms), "max": max(zoom_ms), "runs": zoom_ms,
                    "what": "click handler start -> zoomed graph drawn, URL and breadcrumb updated"},
        "zoom_draw_ms": {"median": statistics.median([z["drawMs"] for z in zooms]), "what": "click -> canvas redrawn"},
        "zoom_to_frame_ms": {"median": statistics.median([z["toFrameMs"] for z in zooms if z.get("toFrameMs")] or [0]),
                             "what": "click -> after the next animation frame"},
        "fetch_ms": statistics.median([t["fetchMs"] for t in firsts]),
    }
    print("BENCH " + json.dumps(res))
    if bench_out:
        with open(bench_out, "w") as f:
            json.dump(res, f, indent=1)
    c.check(f"perf: first render < {PERF_BOUND_MS:.0f} ms", res["first_render_ms"]["max"] < PERF_BOUND_MS, f"median {res['first_render_ms']['median']:.1f} ms, max {res['first_render_ms']['max']:.1f} ms")
    c.check(f"perf: zoom re-render < {PERF_BOUND_MS:.0f} ms", zoom_ms and max(zoom_ms) < PERF_BOUND_MS, f"median {res['zoom_ms']['median']:.1f} ms, max {res['zoom_ms']['max']:.1f} ms over {len(zoom_ms)} zooms")
    c.check("perf: frames narrower than a pixel are skipped", firsts[0]["framesDrawn"] < m["nodes"], f"{firsts[0]['framesDrawn']} of {m['nodes']} drawn")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="base URL of an empty Ignis server")
    ap.add_argument("--fixtures", required=True, help="the shared fixtures directory")
    ap.add_argument("--screenshots", required=True, help="directory for PNG screenshots")
    ap.add_argument("--bench-out", help="write render/zoom timings here as JSON")
    ap.add_argument("--docs", default=os.path.join(REPO, "docs", "screenshots"), help="copy flamegraph.png and diff.png here ('' to skip)")
    ap.add_argument("--load-only", action="store_true", help="load the test data and exit")
    ap.add_argument("--multitenant-url", help="optional: a second server started with tenancy.require_tenant_header=true")
    ap.add_argument("--auth-url", help="optional: a server with authentication on and --auth-token for a tenant")
    ap.add_argument("--auth-token", help="the bearer token of --auth-url")
    args = ap.parse_args()
    base = args.url.rstrip("/")
    os.makedirs(args.screenshots, exist_ok=True)
    if args.docs:
        os.makedirs(args.docs, exist_ok=True)
    c = Checks()
    print(f"loading test data into {base}", flush=True)
    truth = load_data(base, args.fixtures)
    c.check("data: loaded and queryable", True, f"profile types {truth['profile_types']}")
    if args.load_only:
        return 0
    dl = tempfile.mkdtemp(prefix="ignis-ui-downloads-")
    d = make_driver(dl)
    ui = UI(d, base, args.screenshots)
    try:
        c.run("go flame graph", lambda: check_go_flamegraph(ui, c, truth, args.docs))
        c.run("sandwich", lambda: check_sandwich(ui, c, truth))
        c.run("search", lambda: check_search(ui, c, truth))
        c.run("diff", lambda: check_diff(ui, c, truth, args.docs))
        c.run("states", lambda: check_states(ui, c, truth))
        c.run("autocomplete", lambda: check_autocomplete(ui, c))
        c.run("exports", lambda: check_exports(ui, c, dl, args.fixtures))
        if args.multitenant_url:
            c.run("multi-tenancy", lambda: check_multitenant(ui, c, args.multitenant_url, args.fixtures))
        if args.auth_url:
            c.run("authentication", lambda: check_auth(ui, c, args.auth_url, args.auth_token, args.fixtures))
        c.run("performance", lambda: check_perf(ui, c, truth, args.bench_out))
        severe = [e for e in ui.console_errors() if "favicon" not in e["message"] and "Failed to load resource" not in e["message"]]
        c.check("browser: no JavaScript errors in the console", not severe, "; ".join(e["message"][:200] for e in severe[:5]))
    finally:
        d.quit()
        shutil.rmtree(dl, ignore_errors=True)
        shutil.rmtree(d.ignis_profile_dir, ignore_errors=True)
    print(f"\nscreenshots in {args.screenshots}")
    print(f"{c.passed} passed, {c.failed} failed")
    if c.failed:
        print("failed: " + "; ".join(c.failures))
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
