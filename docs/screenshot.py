"""Make docs/demo.png, the README's picture of `fastfig demo`: the demo's page in headless
Chromium (Debian's, through playwright, as the browser tests use it), taken once every
figure has painted live frames.

    python docs/screenshot.py [OUT.png]
"""

import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from browser_helpers import launch  # noqa: E402

#: Each figure's size in the demo (small: the picture is for a README).
SIZE = "560x336"
VIEWPORT = {"width": 1200, "height": 820}
#: Frames each animated figure paints before the picture is taken.
PAINTED = 30

ALL_PAINTED = """([n]) => {
  const viewers = [...window.fastfig.viewers.values()];
  return viewers.length === 3 && viewers.every(v => v.painted >= 1)
    && viewers.filter(v => v.painted >= n).length >= 2;
}"""


def main(out=os.path.join(HERE, "demo.png")):
    from playwright.sync_api import sync_playwright
    demo = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "demo", "--size", SIZE],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = next(line.strip() for line in demo.stdout if line.startswith("http://"))
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.wait_for_function(ALL_PAINTED, arg=[PAINTED], timeout=60000)
            page.screenshot(path=out)
            browser.close()
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(30)
    _shrink(out)
    print(out, os.path.getsize(out), "bytes")


def _shrink(path):
    """A palette PNG: the figures' flat colours survive 256 colours, at a fraction of
    the bytes."""
    from PIL import Image
    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
