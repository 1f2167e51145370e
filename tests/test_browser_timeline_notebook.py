"""The timeline bar in the notebook widget (the viewer's timeline.js, shipped in the
widget's ES module), in a real JupyterLab: it shows for a FuncAnimation, pause stops the
kernel's animation, a step back shows the frame before, pixel for pixel the kernel's."""

import json

import pytest

from browser_helpers import missing as browser_missing
from notebook_helpers import missing as notebook_missing
from test_notebook import PLOT, SETUP, _wait_in_sync, lab, notebook, page  # noqa: F401

pytestmark = pytest.mark.skipif(bool(browser_missing() or notebook_missing()),
                                reason=str(browser_missing() or notebook_missing()))

ANIMATE = ("from matplotlib.animation import FuncAnimation\n"
           "anim = FuncAnimation(fig, lambda i: line.set_ydata(np.sin(x + i / 10)) or [line],"
           " frames=60, interval=20, blit=True)")
TIMELINE = "import json; print(json.dumps(fig.canvas._timeline.state()))"


def test_timeline_bar_pauses_and_steps_the_kernels_animation(page, notebook):  # noqa: F811
    import notebook_helpers as nh
    notebook(SETUP, PLOT, ANIMATE)
    nh.run_all(page)
    bar = page.locator(".fastfig-figure .fastfig-timeline")
    bar.wait_for(state="visible")
    assert bar.locator(".fastfig-tl-range").get_attribute("max") == "59"
    bar.locator('[data-timeline="togglePlay"]').click()
    state = None
    for _ in range(200):
        state = json.loads(nh.kernel_eval(page, TIMELINE))
        if not state["playing"]:
            break
        page.wait_for_timeout(20)   # the click goes to the kernel as a comm message
    assert not state["playing"]
    paused = state["index"]
    kernel_hash, page_hash = _wait_in_sync(page)
    assert kernel_hash == page_hash
    page.wait_for_function(f"() => document.querySelector('.fastfig-tl-index')"
                           f".textContent === '{paused} / 60'")

    bar.locator('[data-timeline="stepBack"]').click()
    want = (paused - 1) % 60
    page.wait_for_function(f"() => document.querySelector('.fastfig-tl-index')"
                           f".textContent === '{want} / 60'")
    assert json.loads(nh.kernel_eval(page, TIMELINE))["index"] == want
    kernel_hash, page_hash = _wait_in_sync(page)
    assert kernel_hash == page_hash
