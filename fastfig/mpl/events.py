"""Input events of the protocol -> the matplotlib events a Qt user would get.

Protocol events (fastfig.protocol.check_event) give pointer positions in CSS pixels from
the top left of the canvas, as a browser reports them; matplotlib wants physical pixels
from the bottom left. The device pixel ratio is the one of the last resize event. Buttons
are matplotlib's numbers (1 left, 2 middle, 3 right, 8 back, 9 forward); ``buttons``
(the buttons held, for motion) is the DOM bit mask (1 left, 2 right, 4 middle, 8 back,
16 forward); scroll ``step`` is positive away from the user (up), as in matplotlib.
Key names are matplotlib's ("ctrl+shift+a", "alt+left"); like Qt, a shifted printable
key is reported as its shifted character without "shift" ("ctrl+A").
"""

import math

from matplotlib.backend_bases import (CloseEvent, KeyEvent, LocationEvent, MouseButton,
                                      MouseEvent, ResizeEvent)

#: Qt's order of modifiers in key names.
MODIFIER_ORDER = ("ctrl", "alt", "shift", "super")
_DOM_BUTTONS = ((1, MouseButton.LEFT), (2, MouseButton.RIGHT), (4, MouseButton.MIDDLE),
                (8, MouseButton.BACK), (16, MouseButton.FORWARD))


class PointerState:
    """What a canvas remembers between events: the last pointer position (matplotlib
    coordinates, for key events) and the buttons pressed (for drags whose motion events
    carry no ``buttons``)."""

    def __init__(self):
        self.xy = (0.0, 0.0)
        self.pressed = set()


def to_display(canvas, x, y):
    """CSS pixels from the top left -> matplotlib display coordinates."""
    ratio = canvas.device_pixel_ratio
    return x * ratio, canvas.figure.bbox.height - y * ratio


def qt_key(key):
    """A protocol key name as Qt's backend would name the same keystroke."""
    if key.endswith("+") and (key == "+" or key.endswith("++")):
        mods, base = key[:-2].split("+") if len(key) > 2 else [], "+"
    else:
        *mods, base = key.split("+")
    mods = [m for m in mods if m]
    if len(base) == 1 and "shift" in mods:
        mods.remove("shift")
        base = base.upper()
    mods = sorted(set(mods), key=lambda m: MODIFIER_ORDER.index(m)
                  if m in MODIFIER_ORDER else len(MODIFIER_ORDER))
    return "+".join(mods + [base])


def _modifiers(event):
    return frozenset(event.get("modifiers", ()))


def dispatch(canvas, event, state):
    """Turn one validated protocol event into matplotlib events on canvas. Resize and
    toolbar events are not handled here (the canvas does those)."""
    etype = event["type"]
    if "x" in event and "y" in event:
        x, y = to_display(canvas, event["x"], event["y"])
        state.xy = (x, y)
    else:
        x, y = state.xy
    mods = _modifiers(event)
    if etype in ("button_press", "dblclick"):
        button = MouseButton(event["button"])
        state.pressed.add(button)
        MouseEvent("button_press_event", canvas, x, y, button, dblclick=etype == "dblclick",
                   modifiers=mods)._process()
    elif etype == "button_release":
        button = MouseButton(event["button"])
        state.pressed.discard(button)
        MouseEvent("button_release_event", canvas, x, y, button, modifiers=mods)._process()
    elif etype == "motion_notify":
        if "buttons" in event:
            held = {b for mask, b in _DOM_BUTTONS if event["buttons"] & mask}
            state.pressed = set(held)
        else:
            held = set(state.pressed)
        MouseEvent("motion_notify_event", canvas, x, y, buttons=held,
                   modifiers=mods)._process()
    elif etype == "scroll":
        MouseEvent("scroll_event", canvas, x, y, step=event["step"], modifiers=mods)._process()
    elif etype in ("figure_enter", "figure_leave"):
        if etype == "figure_leave":
            state.pressed.clear()
        LocationEvent(etype + "_event", canvas, x, y, modifiers=mods)._process()
    elif etype in ("key_press", "key_release"):
        KeyEvent(etype + "_event", canvas, qt_key(event["key"]), x, y)._process()
    else:
        raise ValueError(f"not a pointer or key event: {etype!r}")


def resize(canvas, width, height, ratio):
    """The frontend's canvas is width x height CSS pixels at ratio physical pixels per CSS
    pixel: size the figure to match (dpi scaled by the ratio, as Qt does on HiDPI) and
    tell matplotlib. Returns True when the figure's pixel size or dpi changed."""
    fig = canvas.figure
    old = (fig.bbox.width, fig.bbox.height, fig.dpi)
    canvas._set_device_pixel_ratio(ratio)
    w, h = max(1, round(width * ratio)), max(1, round(height * ratio))
    # As Qt: inches = pixels / dpi, nudged up by one ulp where the product would fall
    # short of the pixel count (Agg truncates the canvas size).
    fig.set_size_inches(_inches(w, fig.dpi), _inches(h, fig.dpi), forward=False)
    if (fig.bbox.width, fig.bbox.height, fig.dpi) == old:
        return False
    ResizeEvent("resize_event", canvas)._process()
    return True


def _inches(pixels, dpi):
    inches = pixels / dpi
    while inches * dpi < pixels:
        inches = math.nextafter(inches, math.inf)
    return inches


def close(canvas):
    CloseEvent("close_event", canvas)._process()
