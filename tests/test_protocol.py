"""The transport protocol's message schema and validation (fastfig/transport/protocol.py)."""

import json

import pytest

from fastfig.transport import protocol as P


def test_frame_headers_are_constant_per_figure():
    assert P.frame_header("1") == b'{"v":2,"type":"frame","figure":"1"}'
    assert P.frame_header("10") != P.frame_header("1")


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 65, "é", "a b", None, 1, "fig\n"])
def test_figure_ids_are_short_ascii(bad):
    with pytest.raises(P.ProtocolError):
        P.check_figure_id(bad)


def test_header_round_trip_and_unknown_optional_fields_ignored():
    raw = P.header(P.PING, t=1.5, future_field={"x": 1})
    msg = P.parse_header(raw)
    assert msg["v"] == 2 and msg["type"] == "ping"
    assert P.check_request(msg) == {"t": 1.5}


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe", b"[1, 2]", b'"ping"', b"{", b"null",
                                 b'{"type": "ping"}', b'{"v": "1", "type": "ping"}',
                                 b'{"v": 2}', b'{"v": 2, "type": 3}', b'{"v": true, "type": "x"}',
                                 b'{"v": 2, "type": "ping", "t": NaN}'])
def test_malformed_headers(raw):
    with pytest.raises(P.ProtocolError) as e:
        P.parse_header(raw)
    assert e.value.code == P.E_MALFORMED


def test_unknown_major_version_names_supported_versions():
    with pytest.raises(P.VersionError) as e:
        P.parse_header(json.dumps({"v": 1, "type": "hello"}).encode())
    assert e.value.code == P.E_VERSION
    assert "version(s) 2" in str(e.value)


def test_oversized_header():
    raw = P.header(P.PING, pad="x" * 100)
    with pytest.raises(P.ProtocolError):
        P.parse_header(raw, limit=50)


def test_unknown_request_type():
    with pytest.raises(P.ProtocolError) as e:
        P.check_request({"v": 2, "type": "format_disk"})
    assert e.value.code == P.E_UNKNOWN_TYPE


def test_requests_name_known_figures():
    figures = {"1": object()}
    assert P.check_request({"v": 2, "type": "resync", "figure": "1"}, figures) == {"figure": "1"}
    with pytest.raises(P.ProtocolError) as e:
        P.check_request({"v": 2, "type": "resync", "figure": "2"}, figures)
    assert e.value.code == P.E_UNKNOWN_FIGURE
    for bad in (None, 1, "../etc", "a" * 100):
        with pytest.raises(P.ProtocolError):
            P.check_request({"v": 2, "type": "leave", "figure": bad}, figures)


def test_join_credit_defaults_and_range():
    assert P.check_request({"v": 2, "type": "join", "figure": "1"}) == {
        "figure": "1", "credit": 4}
    for bad in (0, -1, 65, 1.5, "3", True):
        with pytest.raises(P.ProtocolError):
            P.check_request({"v": 2, "type": "join", "figure": "1", "credit": bad})


@pytest.mark.parametrize("field, value", [("seq", -1), ("seq", 2**32), ("seq", 1.5),
                                          ("seq", "3"), ("epoch", True), ("n", None),
                                          ("n", -1), ("n", 2**21)])
def test_credit_fields_range(field, value):
    msg = {"v": 2, "type": "credit", "figure": "1", "n": 1, "seq": 5, "epoch": 6}
    msg[field] = value
    with pytest.raises(P.ProtocolError):
        P.check_request(msg)


def test_hello_accept():
    out = P.check_request({"v": 2, "type": "hello", "accept": ["png", "rle", "future"]})
    assert {e.name for e in out["accept"]} == {"PNG", "RLE"}
    for bad in ("png", [], [1], ["x" * 40], ["png"] * 17):
        with pytest.raises(P.ProtocolError):
            P.check_request({"v": 2, "type": "hello", "accept": bad})


def test_split_envelope_keeps_relay_routes():
    assert P.split_envelope([b"id", b"", b"h"]) == ([b"id", b""], [b"h"])
    assert P.split_envelope([b"relay", b"id", b"", b"h", b"p"]) == (
        [b"relay", b"id", b""], [b"h", b"p"])
    with pytest.raises(P.ProtocolError):
        P.split_envelope([b"id", b"h"])


VALID_EVENTS = [
    {"type": "motion_notify", "x": 10.5, "y": 3, "buttons": 0, "modifiers": []},
    {"type": "button_press", "x": 1, "y": 2, "button": 1, "buttons": 1},
    {"type": "button_release", "x": 1, "y": 2, "button": 3},
    {"type": "dblclick", "x": 1, "y": 2, "button": 1},
    {"type": "button_press", "x": 1, "y": 2, "button": 8},
    {"type": "figure_enter", "x": 0, "y": 0},
    {"type": "figure_leave"},
    {"type": "scroll", "x": 5, "y": 5, "step": -1, "modifiers": ["ctrl"]},
    {"type": "key_press", "key": "a"},
    {"type": "key_press", "key": "ctrl+shift+a"},
    {"type": "key_press", "key": "ctrl+alt+super+f11"},
    {"type": "key_press", "key": "alt+left"},
    {"type": "key_release", "key": "ctrl++"},
    {"type": "key_release", "key": "+"},
    {"type": "key_press", "key": "shift+pageup", "modifiers": ["shift"]},
    {"type": "resize", "width": 800, "height": 600, "device_pixel_ratio": 2},
    {"type": "toolbar", "name": "zoom"},
    {"type": "toolbar", "name": "download", "format": "svg"},
]


@pytest.mark.parametrize("event", VALID_EVENTS)
def test_valid_events(event):
    out = P.check_event(dict(event, extra="ignored"))
    assert "extra" not in out
    for k, v in event.items():
        assert out[k] == v


INVALID_EVENTS = [
    None, [], {"type": "unknown"}, {"type": "motion_notify"},
    {"type": "motion_notify", "x": float("nan"), "y": 0},
    {"type": "motion_notify", "x": 1e9, "y": 0},
    {"type": "motion_notify", "x": "1", "y": 0},
    {"type": "motion_notify", "x": True, "y": 0},
    {"type": "button_press", "x": 1, "y": 2},
    {"type": "button_press", "x": 1, "y": 2, "button": 4},
    {"type": "button_press", "x": 1, "y": 2, "button": 1, "buttons": -1},
    {"type": "scroll", "x": 1, "y": 2},
    {"type": "scroll", "x": 1, "y": 2, "step": 1e6},
    {"type": "key_press"}, {"type": "key_press", "key": ""},
    {"type": "key_press", "key": "hyper+a"}, {"type": "key_press", "key": "ctrl+ctrl+a"},
    {"type": "key_press", "key": "x" * 100}, {"type": "key_press", "key": "Bad Key"},
    {"type": "key_press", "key": "a\x00"},
    {"type": "key_press", "key": "a", "modifiers": ["meta"]},
    {"type": "key_press", "key": "a", "modifiers": "ctrl"},
    {"type": "resize", "width": 0, "height": 10},
    {"type": "resize", "width": 10, "height": 10, "device_pixel_ratio": 100},
    {"type": "toolbar", "name": "rm -rf"},
    {"type": "toolbar", "name": "download", "format": "exe"},
]


@pytest.mark.parametrize("event", INVALID_EVENTS)
def test_invalid_events(event):
    with pytest.raises(P.ProtocolError) as e:
        P.check_event(event)
    assert e.value.code == P.E_INVALID_EVENT


def test_state_fields():
    assert P.check_state({"title": "t", "cursor": "crosshair", "navigate_mode": None,
                          "history": {"back": True, "forward": False},
                          "rubberband": [0, 1, 2, 3], "message": "x=1"})["cursor"] == "crosshair"
    for bad in ({"cursor": "skull"}, {"rubberband": [1, 2]}, {"color": "red"},
                {"history": {"back": 1}}, {"navigate_mode": "FLY"}):
        with pytest.raises(P.ProtocolError):
            P.check_state(bad)


def test_sequence_numbers_wrap():
    assert P.seq_newer(1, 0)
    assert P.seq_newer(0, 2**32 - 1)
    assert not P.seq_newer(5, 5)
    assert not P.seq_newer(4, 5)
