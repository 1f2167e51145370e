"""bench_browser without playwright: the same figures, pages and counters, in Chromium
driven over a bare DevTools connection that asks for nothing but script evaluation.

    python bench/bench_browser_bare.py                       # heavy 1920x1080, 3 pairs
    python bench/bench_browser_bare.py --cases line1 heavy --repeat 5

Why: playwright turns on the DevTools network domain in every page, so Chromium copies
each websocket message (base64, in JSON) to playwright's driver, which passes it on to
the Python client. At heavy 1920x1080 that moves ~17-25 MB/s of frames and cost the
2-core machine ~0.6 CPU (driver 0.22, the bench's Python 0.11, Chromium's browser
process 0.19) against ~0.2 for the whole Chromium here: the figure process, CPU-bound,
lost the core it needed, and the side that sends more bytes (fastfig) lost more. A
person's browser copies nothing. bench_browser.py stays the reference for the rest
(main-thread metrics, the viewer's received/dropped counts); this script measures only
what a person sees: refreshes with a new image, per refresh, for both systems.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_browser as bb  # noqa: E402  (puts the repository and tests/ on the path)
from browser_helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


class Page:
    """One tab over its DevTools websocket: evaluate() and nothing else is asked for."""

    def __init__(self, ws):
        self.ws, self.next_id, self.waiting = ws, 0, {}

    @classmethod
    async def open(cls, port, width, height):
        from tornado.websocket import websocket_connect
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank",
                                         method="PUT")
        with urllib.request.urlopen(request, timeout=10) as r:
            target = json.loads(r.read())
        page = cls(await websocket_connect(target["webSocketDebuggerUrl"],
                                           max_message_size=1 << 26))
        page.target, page.port = target["id"], port
        asyncio.ensure_future(page._read())
        await page.call("Page.enable")   # page events only: no network domain
        await page.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=False)
        return page

    async def _read(self):
        while True:
            message = await self.ws.read_message()
            if message is None:
                return
            message = json.loads(message)
            future = self.waiting.pop(message.get("id"), None)
            if future is not None:
                future.set_result(message)

    async def call(self, method, **params):
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        self.ws.write_message(json.dumps({"id": self.next_id, "method": method,
                                          "params": params}))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def evaluate(self, expression):
        result = await self.call("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def close(self):
        self.ws.close()
        urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/close/{self.target}",
                               timeout=10).read()


def start_chromium(profile):
    proc = subprocess.Popen([CHROMIUM, "--headless", *CHROMIUM_ARGS,
                             "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "about:blank"], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        found = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        if found:
            # Chromium goes on logging: keep its pipe drained or it blocks.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(found.group(1))
    raise RuntimeError("Chromium did not print its DevTools address")


async def measure(port, system, case, size, seconds, warmup):
    width, height = bb.SIZES[size]
    child, url = bb.start_child(system, case, size)
    page = await Page.open(port, width + 200, height + 300)
    try:
        for script in (bb.COUNT_TICKS,
                       bb.FASTFIG_PAINTS if system == "fastfig" else bb.COUNT_WEBAGG_PAINTS):
            await page.call("Page.addScriptToEvaluateOnNewDocument", source=script)
        await page.call("Page.navigate", url=url)
        deadline = time.monotonic() + 20
        while not await page.evaluate("!!window.__paints && window.__paints() > 0"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system} {case} {size}: no frame painted in 20 s")
            await asyncio.sleep(0.2)
        await asyncio.sleep(warmup)
        cpu = bb.CpuWindow(child.pid)
        await page.evaluate("window.__ticks.reset()")
        cpu.start()
        await asyncio.sleep(seconds)
        ticks = json.loads(await page.evaluate("JSON.stringify(window.__ticks.read())"))
        result = {"system": system, "case": case, "size": size, **cpu.stop()}
        result.update(ticks=ticks["ticks"], painted_ticks=ticks["painted"],
                      painted_fps=ticks["painted"] / ticks["seconds"],
                      painted_share=ticks["painted"] / max(1, ticks["ticks"]),
                      ticks_per_s=ticks["ticks"] / ticks["seconds"])
        if system == "fastfig":
            report = json.loads(await page.evaluate(
                "JSON.stringify([...window.fastfig.viewers.values()][0].stats.report())"))
            result.update(latency_ms=report["latencyMs"], round_trip_ms=report["roundTripMs"])
        return result
    finally:
        page.close()
        bb.stop_child(child)


async def run(cases, sizes, seconds, warmup, repeat):
    profile = tempfile.mkdtemp(prefix="fastfig-bench-")
    chromium, port = start_chromium(profile)
    results = []
    try:
        for attempt in range(repeat):
            for size in sizes:
                for case in cases:
                    pair = {}
                    for system in ("fastfig", "webagg"):
                        r = await measure(port, system, case, size, seconds, warmup)
                        r["run"] = attempt + 1
                        pair[system] = r
                        results.append(r)
                    f, w = pair["fastfig"], pair["webagg"]
                    print(f"  {case:6s} {size}: fastfig {f['painted_fps']:5.2f}/s "
                          f"({60 * f['painted_share']:4.1f} of 60, latency "
                          f"{f.get('latency_ms') or 0:.0f} ms, cpu figure {f['cpu_figure']:.2f}"
                          f" browser {f['cpu_browser']:.2f}) | webagg {w['painted_fps']:5.2f}/s "
                          f"({60 * w['painted_share']:4.1f} of 60, cpu figure "
                          f"{w['cpu_figure']:.2f} browser {w['cpu_browser']:.2f}) | "
                          f"ratio {f['painted_fps'] / max(w['painted_fps'], 1e-9):.2f}x",
                          flush=True)
    finally:
        chromium.terminate()
        chromium.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["heavy"], choices=bb.CASES)
    ap.add_argument("--sizes", nargs="+", default=["1920x1080"], choices=list(bb.SIZES))
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if not shutil.which(CHROMIUM):
        raise SystemExit(f"bench_browser_bare: {CHROMIUM} is missing "
                         "(apt-get install -y chromium)")
    results = asyncio.run(run(args.cases, args.sizes, args.seconds, args.warmup,
                              args.repeat))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
