"""The transport protocol (PROTOCOL.md section 2): message types, constants, and the
strict validation every incoming message goes through. Shared by the server, the client,
the bridge and the relay so that all agree on one definition of a valid message.

A message is a list of ZeroMQ frames: a route (the request envelope, ending in an empty
delimiter frame), one JSON header frame {"v": 2, "type": ..., ...}, then zero or more
binary frames (a frame packet, unmodified). Everything for a client travels on its one
DEALER <-> ROUTER connection: requests, replies and what is pushed to it.
"""

import json
import math
import re

from ..errors import ProtocolError
from .session import DEFAULT_CREDIT, MAX_CREDIT

#: Protocol major version: a peer rejects any other major; minor additions only add
#: optional fields, which receivers ignore.
VERSION = 2
#: 2.1: the "timeline" event and state field (an animation's play/pause/step/seek).
MINOR = 1
SUPPORTED_VERSIONS = (2,)

#: Largest request or reply-to-server message (ZMQ_MAXMSGSIZE on the server's ROUTER):
#: requests and events are small JSON objects, so anything bigger is hostile or broken.
MAX_REQUEST_BYTES = 64 * 1024
#: Largest JSON header a client accepts from a server (figure lists can be long).
MAX_HEADER_BYTES = 1024 * 1024

FIGURE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")

#: Largest canvas side in CSS pixels accepted in events (coordinates may run a little
#: outside the canvas while a drag continues, so the bound is generous, not the size).
MAX_COORD = 1 << 20
MAX_STRING = 1024

# Requests (client -> server, DEALER -> ROUTER) and their replies.
HELLO = "hello"          # -> welcome; the client is then sent every figure list change
FIGURES = "figures"      # -> figures
JOIN = "join"            # start receiving a figure: -> state (all of it), then frames
CREDIT = "credit"        # n frames taken: n credits back; no reply
RESYNC = "resync"        # the consumer lost its chain: its next frame is a keyframe
LEAVE = "leave"          # stop receiving a figure; no reply
EVENT = "event"          # no reply unless invalid
PING = "ping"            # -> pong
BYE = "bye"              # no reply; the server forgets the client
# Replies, and messages pushed to a client (server -> client).
WELCOME = "welcome"
PONG = "pong"
ERROR = "error"
FRAME = "frame"          # pushed to a joined consumer with credit: header + packet
STATE = "state"          # pushed to joined consumers: figure state changes
CLOSE = "close"          # pushed to joined consumers: the figure is gone
DOWNLOAD = "download"    # reply to a toolbar download event: header + the file's bytes

REQUEST_TYPES = frozenset({HELLO, FIGURES, JOIN, CREDIT, RESYNC, LEAVE, EVENT, PING, BYE})

EVENT_TYPES = frozenset({
    "motion_notify", "button_press", "button_release", "dblclick", "figure_enter",
    "figure_leave", "scroll", "key_press", "key_release", "resize", "toolbar", "timeline"})
POINTER_EVENTS = frozenset({"motion_notify", "button_press", "button_release", "dblclick",
                            "scroll"})
BUTTONS = frozenset({1, 2, 3, 8, 9})   # left, middle, right, back, forward
MODIFIERS = frozenset({"ctrl", "alt", "shift", "super"})
TOOLBAR_ACTIONS = frozenset({"home", "back", "forward", "pan", "zoom", "download", "close"})
DOWNLOAD_FORMATS = frozenset({"png", "svg", "svgz", "pdf", "eps", "ps", "jpg", "jpeg",
                              "tif", "tiff", "webp", "pgf", "raw", "rgba"})
#: Timeline actions (protocol 2.1) and the field each one requires, if any.
TIMELINE_ACTIONS = {"play": None, "pause": None, "step": "delta", "seek": "index",
                    "speed": "speed", "direction": "direction"}
MAX_STEP = 1000
MAX_FRAME_INDEX = 1 << 31
MIN_SPEED, MAX_SPEED = 0.05, 20
#: Longest interval (ms per frame at speed 1) a timeline state carries: a day.
MAX_INTERVAL_MS = 86_400_000
CURSORS = frozenset({"default", "pointer", "crosshair", "move", "wait", "ew-resize",
                     "ns-resize", "not-allowed"})
#: Multi-letter key names (matplotlib's vocabulary): anything else must be one character.
_KEY_NAME = re.compile(r"[a-z][a-z0-9_]{1,19}\Z")

# Error codes carried in `error` replies.
E_VERSION = "version"
E_MALFORMED = "malformed"
E_UNKNOWN_TYPE = "unknown_type"
E_UNKNOWN_FIGURE = "unknown_figure"
E_INVALID_EVENT = "invalid_event"
E_NOT_JOINED = "not_joined"   # credit/resync/leave for a figure this client did not join
E_NO_TIMELINE = "no_timeline"   # a timeline event for a figure without one (2.1)
E_UNAVAILABLE = "unavailable"   # a timeline event naming a frame that cannot be shown (2.1)


class VersionError(ProtocolError):
    def __init__(self, version):
        super().__init__(f"protocol version {version!r} is not supported; this peer speaks "
                         f"version(s) {', '.join(map(str, SUPPORTED_VERSIONS))}", E_VERSION)
        self.version = version


def check_figure_id(figure_id):
    if not isinstance(figure_id, str) or not FIGURE_ID.match(figure_id):
        raise ProtocolError(f"figure id must match [A-Za-z0-9_.-]{{1,64}}, not {figure_id!r}")
    return figure_id


# -- encoding and parsing headers -----------------------------------------------------

def header(type_, **fields):
    """The JSON header frame of a message."""
    fields = {"v": VERSION, "type": type_, **fields}
    return json.dumps(fields, separators=(",", ":"), allow_nan=False).encode()


def frame_header(figure_id):
    """The header of a figure's frame messages: constant per figure (the packet carries
    seq and epoch), so both ends build it once and compare it byte for byte."""
    return header(FRAME, figure=figure_id)


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


#: One decoder for every header (json.loads with options builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_header(raw, limit=MAX_HEADER_BYTES):
    """The header frame as a dict, with a supported version and a string type."""
    if len(raw) > limit:
        raise ProtocolError(f"header of {len(raw)} bytes exceeds {limit}")
    try:
        msg = _DECODER.decode(bytes(raw).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ProtocolError(f"header is not JSON: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("header is not a JSON object")
    v = msg.get("v")
    if type(v) is not int:
        raise ProtocolError("header has no integer version 'v'")
    if v not in SUPPORTED_VERSIONS:
        raise VersionError(v)
    if not isinstance(msg.get("type"), str) or len(msg["type"]) > 64:
        raise ProtocolError("header has no string 'type'")
    return msg


def split_envelope(frames):
    """Split a ROUTER message into (envelope, body): the envelope runs up to and including
    the first empty frame, so requests relayed through any number of hops keep their
    route."""
    for i, f in enumerate(frames):
        if len(f) == 0:
            return frames[:i + 1], frames[i + 1:]
    raise ProtocolError("request has no empty delimiter frame")


# -- field validators -------------------------------------------------------------------

def _number(msg, name, lo, hi, required=True, integer=False):
    value = msg.get(name)
    if value is None:
        if required:
            raise ProtocolError(f"missing field {name!r}")
        return None
    if type(value) is bool or not isinstance(value, (int, float)) or (
            integer and not isinstance(value, int)):
        raise ProtocolError(f"field {name!r} must be a{'n integer' if integer else ' number'}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"field {name!r} must be finite")
    if not lo <= value <= hi:
        raise ProtocolError(f"field {name!r} = {value} outside {lo}..{hi}")
    return value


def _string(msg, name, maxlen=MAX_STRING, required=True, choices=None):
    value = msg.get(name)
    if value is None:
        if required:
            raise ProtocolError(f"missing field {name!r}")
        return None
    if not isinstance(value, str) or len(value) > maxlen or not value.isprintable():
        raise ProtocolError(f"field {name!r} must be a printable string of at most "
                            f"{maxlen} characters")
    if choices is not None and value not in choices:
        raise ProtocolError(f"field {name!r} = {value!r} is not one of {sorted(choices)}")
    return value


def _figure(msg, figures=None):
    fid = msg.get("figure")
    try:
        check_figure_id(fid)
    except ProtocolError as e:
        raise ProtocolError(f"field 'figure': {e}") from None
    if figures is not None and fid not in figures:
        raise ProtocolError(f"no figure {fid!r}", E_UNKNOWN_FIGURE)
    return fid


def check_key(key):
    """A matplotlib key name: modifiers joined by '+' before one key, e.g. "ctrl+shift+a",
    "alt+left", "ctrl++"."""
    if not isinstance(key, str) or not 1 <= len(key) <= 64 or not key.isprintable():
        raise ProtocolError(f"bad key {key!r}", E_INVALID_EVENT)
    if key.endswith("+") and (len(key) == 1 or key.endswith("++")):
        mods, base = key[:-2].split("+") if len(key) > 2 else [], "+"
    else:
        *mods, base = key.split("+")
    if mods == [""]:
        mods = []
    if any(m not in MODIFIERS for m in mods) or len(set(mods)) != len(mods):
        raise ProtocolError(f"bad modifiers in key {key!r}", E_INVALID_EVENT)
    if not (len(base) == 1 or _KEY_NAME.match(base)):
        raise ProtocolError(f"bad key name in {key!r}", E_INVALID_EVENT)
    return key


def check_event(event):
    """Validate an input event; return a new dict with only its known fields."""
    if not isinstance(event, dict):
        raise ProtocolError("event must be a JSON object", E_INVALID_EVENT)
    try:
        return _check_event(event)
    except ProtocolError as e:
        raise ProtocolError(f"invalid event: {e}", E_INVALID_EVENT) from None


def _check_event(ev):
    etype = _string(ev, "type", 32, choices=EVENT_TYPES)
    out = {"type": etype}
    pointer = etype in POINTER_EVENTS
    for name in ("x", "y"):
        value = _number(ev, name, -MAX_COORD, MAX_COORD, required=pointer)
        if value is not None:
            out[name] = value
    if etype in ("button_press", "button_release", "dblclick"):
        button = _number(ev, "button", 0, 9, integer=True)
        if button not in BUTTONS:
            raise ProtocolError(f"button {button} is not one of {sorted(BUTTONS)}")
        out["button"] = button
    buttons = _number(ev, "buttons", 0, 0xFFFF, required=False, integer=True)
    if buttons is not None:
        out["buttons"] = buttons
    if etype == "scroll":
        out["step"] = _number(ev, "step", -1000, 1000)
    if etype in ("key_press", "key_release"):
        out["key"] = check_key(ev.get("key"))
    mods = ev.get("modifiers")
    if mods is not None:
        if (not isinstance(mods, list) or len(mods) > len(MODIFIERS)
                or any(not isinstance(m, str) or m not in MODIFIERS for m in mods)
                or len(set(mods)) != len(mods)):
            raise ProtocolError(f"modifiers must be a list of distinct {sorted(MODIFIERS)}")
        out["modifiers"] = list(mods)
    if etype == "resize":
        out["width"] = _number(ev, "width", 1, 32768)
        out["height"] = _number(ev, "height", 1, 32768)
        dpr = _number(ev, "device_pixel_ratio", 0.25, 8, required=False)
        out["device_pixel_ratio"] = 1 if dpr is None else dpr
    if etype == "toolbar":
        out["name"] = _string(ev, "name", 16, choices=TOOLBAR_ACTIONS)
        if out["name"] == "download":
            out["format"] = _string(ev, "format", 8, required=False,
                                    choices=DOWNLOAD_FORMATS) or "png"
    if etype == "timeline":
        out.update(_timeline_event(ev))
    return out


def _timeline_event(ev):
    action = _string(ev, "action", 16, choices=TIMELINE_ACTIONS)
    out = {"action": action}
    if action == "step":
        delta = _number(ev, "delta", -MAX_STEP, MAX_STEP, integer=True)
        if delta == 0:
            raise ProtocolError("field 'delta' must not be 0")
        out["delta"] = delta
    elif action == "seek":
        out["index"] = _number(ev, "index", 0, MAX_FRAME_INDEX, integer=True)
    elif action == "speed":
        out["speed"] = _number(ev, "speed", MIN_SPEED, MAX_SPEED)
    elif action == "direction":
        direction = _number(ev, "direction", -1, 1, integer=True)
        if direction == 0:
            raise ProtocolError("field 'direction' must be 1 or -1")
        out["direction"] = direction
    return out


def check_accept(value):
    """The encodings a client says it decodes: a list of names, at most a few."""
    from ..codec.packet import Encoding
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= 16:
        raise ProtocolError("field 'accept' must be a list of 1 to 16 encoding names")
    out = set()
    for name in value:
        if not isinstance(name, str) or len(name) > 16:
            raise ProtocolError("field 'accept' must hold encoding names")
        try:
            out.add(Encoding.parse(name))
        except ValueError:
            pass  # an encoding this server does not know cannot be asked for
    return frozenset(out)


def check_request(msg, figures=None):
    """Validate a request header (already through parse_header) against its type's
    fields. figures: the known figure ids (to reject unknown figures). Returns the
    cleaned fields the server uses."""
    t = msg["type"]
    if t not in REQUEST_TYPES:
        raise ProtocolError(f"unknown request type {t!r}", E_UNKNOWN_TYPE)
    if t == HELLO:
        return {"accept": check_accept(msg.get("accept")),
                "client": _string(msg, "client", 128, required=False) or "?"}
    if t == JOIN:
        credit = _number(msg, "credit", 1, MAX_CREDIT, required=False, integer=True)
        return {"figure": _figure(msg, figures),
                "credit": DEFAULT_CREDIT if credit is None else credit}
    if t == CREDIT:
        return {"figure": _figure(msg, figures),
                "n": _number(msg, "n", 0, 1 << 20, integer=True),
                "seq": _number(msg, "seq", 0, 0xFFFFFFFF, required=False, integer=True),
                "epoch": _number(msg, "epoch", 0, 0xFFFFFFFF, required=False, integer=True)}
    if t in (RESYNC, LEAVE):
        return {"figure": _figure(msg, figures)}
    if t == EVENT:
        return {"figure": _figure(msg, figures), "event": check_event(msg.get("event"))}
    if t == PING:
        return {"t": _number(msg, "t", -1e18, 1e18, required=False)}
    return {}


# -- figure state -----------------------------------------------------------------------

#: Longest title or message carried; longer text is cut (with an ellipsis), not refused.
MAX_STATE_TEXT = 4096

# Control characters other than newline and tab: none of them has a meaning in a status
# line, and some (escape sequences) would let a figure repaint a terminal printing it.
_CONTROL = {c: "\ufffd" for c in (*range(32), 127) if c not in (9, 10)}


def _text(value, maxlen):
    """Figure text as matplotlib makes it, carried whatever it holds: matplotlib's own
    toolbar message over an image is "x=... y=...\n[value]", so newlines and tabs pass,
    other control characters become U+FFFD, and overlong text is cut."""
    value = value.translate(_CONTROL)
    if len(value) > maxlen:
        value = value[:maxlen - 1] + "\u2026"
    return value


def check_state(state):
    """Validate figure state fields (title, cursor, message, ...); return a clean dict."""
    out = {}
    for name, value in state.items():
        if name == "title" or name == "message":
            out[name] = "" if value is None else _text(str(value), MAX_STATE_TEXT)
        elif name == "cursor":
            out[name] = _string(state, name, 32, choices=CURSORS)
        elif name == "navigate_mode":
            out[name] = None if value is None else _string(state, name, 8,
                                                           choices={"PAN", "ZOOM"})
        elif name == "history":
            if not isinstance(value, dict) or set(value) - {"back", "forward"} or any(
                    not isinstance(b, bool) for b in value.values()):
                raise ProtocolError("history must be {'back': bool, 'forward': bool}")
            out[name] = dict(value)
        elif name == "rubberband":
            if value is not None:
                if not isinstance(value, (list, tuple)) or len(value) != 4:
                    raise ProtocolError("rubberband must be [x0, y0, x1, y1] or None")
                value = [_number({"c": c}, "c", -MAX_COORD, MAX_COORD) for c in value]
            out[name] = value
        elif name == "capture_scroll":
            out[name] = bool(value)
        elif name == "timeline":
            out[name] = check_timeline(value)
        else:
            raise ProtocolError(f"unknown state field {name!r}")
    return out


def check_timeline(value):
    """The ``timeline`` state field (protocol 2.1): index, length, playing, direction,
    speed, interval (ms per frame at speed 1) and cached ([first, last] or None)."""
    if not isinstance(value, dict):
        raise ProtocolError("timeline must be an object")
    missing = {"index", "length", "playing", "direction", "speed", "interval",
               "cached"} - set(value)
    if missing:
        raise ProtocolError(f"timeline lacks {sorted(missing)}")
    out = {"index": _number(value, "index", 0, MAX_FRAME_INDEX, integer=True),
           "length": _number(value, "length", 0, MAX_FRAME_INDEX + 1, required=False,
                             integer=True)}
    if not isinstance(value["playing"], bool):
        raise ProtocolError("timeline 'playing' must be a bool")
    out["playing"] = value["playing"]
    if value["direction"] not in (1, -1) or type(value["direction"]) is not int:
        raise ProtocolError("timeline 'direction' must be 1 or -1")
    out["direction"] = value["direction"]
    out["speed"] = _number(value, "speed", MIN_SPEED, MAX_SPEED)
    out["interval"] = _number(value, "interval", 0, MAX_INTERVAL_MS)
    cached = value["cached"]
    if cached is not None:
        if (not isinstance(cached, (list, tuple)) or len(cached) != 2
                or any(type(c) is not int or not 0 <= c <= MAX_FRAME_INDEX for c in cached)
                or cached[0] > cached[1]):
            raise ProtocolError("timeline 'cached' must be [first, last] frame indexes "
                                "or None")
        cached = [cached[0], cached[1]]
    out["cached"] = cached
    return out


def seq_newer(a, b):
    """True when sequence number a comes after b (32-bit serial number arithmetic)."""
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000
