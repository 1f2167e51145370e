"""The websocket bridge (fastfig/web/bridge.py) without a browser: tornado's own HTTP and
websocket clients against a real Server and Bridge on one asyncio loop. Token, Host and
Origin refusals; packets relayed byte for byte; flow control per tab; events, downloads,
figure state and a server restart."""

import asyncio
import json
import socket

import numpy as np
import pytest
import tornado.httpclient
import tornado.websocket

from fastfig import FrameDecoder, Server
from fastfig.transport import protocol as P
from fastfig.codec.packet import peek
from fastfig.transport.session import DEFAULT_CREDIT
from fastfig.web.bridge import Bridge
from fastfig.transport.security import InsecureAddress
from transport_helpers import frame_index, make_frame

TIMEOUT = 5.0


def run(coro):
    """Run one async test on a fresh loop, bounded in time."""
    async def bounded():
        return await asyncio.wait_for(coro, 30)
    asyncio.run(bounded())


class Setup:
    def __init__(self, server, bridge, stream):
        self.server, self.bridge, self.stream = server, bridge, stream
        self.http = tornado.httpclient.AsyncHTTPClient(force_instance=True)

    def url(self, path, token=True):
        sep = "&" if "?" in path else "?"
        return f"{self.bridge.origin}{path}{sep}token={self.bridge.token}" if token else \
            f"{self.bridge.origin}{path}"

    async def get(self, path, token=True, headers=None):
        return await self.http.fetch(self.url(path, token), headers=headers,
                                     raise_error=False, request_timeout=TIMEOUT)

    async def ws(self, figure="1", token=True, origin="same"):
        headers = {}
        if origin == "same":
            headers["Origin"] = self.bridge.origin
        elif origin:
            headers["Origin"] = origin
        url = self.url(f"/ws/{figure}", token).replace("http://", "ws://")
        req = tornado.httpclient.HTTPRequest(url, headers=headers, request_timeout=TIMEOUT)
        return Tab(await tornado.websocket.websocket_connect(req))

    def close(self):
        self.http.close()
        self.bridge.close()
        self.server.close()


class Tab:
    """A websocket client that sorts what arrives into packets and JSON messages."""

    def __init__(self, conn):
        self.conn = conn
        self.packets = []
        self.messages = []

    async def read(self):
        msg = await asyncio.wait_for(self.conn.read_message(), TIMEOUT)
        if msg is None:
            raise ConnectionError("websocket closed")
        if isinstance(msg, bytes):
            self.packets.append(msg)
        else:
            self.messages.append(json.loads(msg))
        return msg

    async def packet(self):
        while True:
            msg = await self.read()
            if isinstance(msg, bytes):
                return msg

    async def message(self, type_):
        for m in self.messages:
            if m["type"] == type_:
                self.messages.remove(m)
                return m
        while True:
            msg = await self.read()
            if isinstance(msg, str) and json.loads(msg)["type"] == type_:
                self.messages.pop()
                return json.loads(msg)

    async def drain(self, seconds):
        """Read whatever arrives until nothing has come for seconds."""
        try:
            while True:
                msg = await asyncio.wait_for(self.conn.read_message(), seconds)
                if isinstance(msg, bytes):
                    self.packets.append(msg)
        except asyncio.TimeoutError:
            pass

    def send(self, **msg):
        return self.conn.write_message(json.dumps(msg))

    def take(self, packet):
        """The tab took (applied) one packet: one credit back."""
        p = peek(packet)
        return self.send(type="credit", n=1, seq=p.seq, epoch=p.epoch, ok=True)


async def setup(address=None, width=160, height=120, **bridge_options):
    server = Server(address)
    await server.start()
    stream = server.add_figure("1", width, height, title="one")
    stream.publish(make_frame(0, width, height))
    bridge = Bridge(server, **bridge_options)
    await bridge.start()
    return Setup(server, bridge, stream)


def test_binds_loopback_only():
    with pytest.raises(InsecureAddress):
        Bridge("tcp://127.0.0.1:1", host="0.0.0.0")

    async def main():
        s = await setup()
        try:
            assert s.bridge.url.startswith("http://127.0.0.1:")
            assert f"token={s.bridge.token}" in s.bridge.url and len(s.bridge.token) >= 24
        finally:
            s.close()
    run(main())


def test_page_and_api_need_the_token():
    async def main():
        s = await setup()
        try:
            for path in ("/", "/figure/1", "/api/figures", "/download/1.png"):
                r = await s.get(path, token=False)
                assert r.code == 403 and b"wrong or missing token" in r.body, path
                r = await s.http.fetch(s.url(path, False) + "?token=nope", raise_error=False)
                assert r.code == 403, path
            r = await s.get("/")
            assert r.code == 200 and b"/static/index.js" in r.body
            assert r.headers["Referrer-Policy"] == "no-referrer"
            assert "connect-src 'self'" in r.headers["Content-Security-Policy"]
            r = await s.get("/api/figures")
            figures = json.loads(r.body)["figures"]
            assert [(f["id"], f["title"], f["width"]) for f in figures] == [("1", "one", 160)]
            # The token may also come as a header (non-browser clients).
            r = await s.get("/api/figures", token=False,
                            headers={"Authorization": f"token {s.bridge.token}"})
            assert r.code == 200
            # Static modules are public package files, served with the right type.
            r = await s.get("/static/packet.js", token=False)
            assert r.code == 200 and r.headers["Content-Type"].startswith("text/javascript")
        finally:
            s.close()
    run(main())


def test_foreign_host_and_origin_are_refused():
    async def main():
        s = await setup()
        try:
            # DNS rebinding: a page of evil.example resolved to 127.0.0.1.
            r = await s.get("/", headers={"Host": f"evil.example:{s.bridge.port}"})
            assert r.code == 403 and b"Host" in r.body
            r = await s.get("/api/figures", headers={"Origin": "http://evil.example"})
            assert r.code == 403 and b"not allowed" in r.body
        finally:
            s.close()
    run(main())


def test_websocket_refusals_say_why():
    async def main():
        s = await setup()
        try:
            for kwargs, text in (({"token": False}, b"token"),
                                 ({"origin": "http://evil.example"}, b"evil.example"),
                                 ({"origin": "null"}, b"not allowed")):
                with pytest.raises(tornado.httpclient.HTTPClientError) as err:
                    await s.ws(**kwargs)
                assert err.value.code == 403
                assert text in err.value.response.body, kwargs
            tab = await s.ws(origin=None)    # no Origin: not a browser; the token suffices
            await tab.message("welcome")
        finally:
            s.close()
    run(main())


def test_packets_are_relayed_byte_for_byte():
    async def main():
        s = await setup()
        try:
            tab = await s.ws()
            welcome = await tab.message("welcome")
            assert welcome["figure"] == "1" and welcome["info"]["title"] == "one"
            assert welcome["state"] == {} or welcome["state"]["title"] == "one"
            first = await tab.packet()
            assert peek(first).keyframe
            decoder = FrameDecoder()
            decoder.decode(first)
            await tab.take(first)
            for i in range(1, 30):
                frame = s.stream.publish(make_frame(i, 160, 120))
                packet = await tab.packet()
                assert packet == bytes(frame)      # unchanged, one message per frame
                decoder.decode(packet)
                assert frame_index(decoder.image) == i
                await tab.take(packet)
            state = await tab.message("state")
            assert state["state"]["title"] == "one"
        finally:
            s.close()
    run(main())


def test_tab_socket_sends_without_nagle_delay():
    # Each frame is waited for by the tab before it credits the next: with Nagle's
    # algorithm on, a packet's last partial segment waited for the tab's delayed ACK
    # (40 ms on Linux) and line1 painted 24 of 60 refreshes on an idle machine.
    async def main():
        s = await setup()
        try:
            tab = await s.ws()
            await tab.message("welcome")
            (handler,) = s.bridge.sockets
            sock = handler.ws_connection.stream.socket
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            s.close()
    run(main())


def test_flow_control_per_tab():
    async def main():
        s = await setup()
        try:
            stalled, live = await s.ws(), await s.ws()
            for tab in (stalled, live):
                await tab.take(await tab.packet())
            for i in range(1, 40):
                s.stream.publish(make_frame(i, 160, 120))
                packet = await live.packet()
                assert frame_index_of(packet, live) == i
                await live.take(packet)
            # The stalled tab got a window of frames and nothing since.
            await stalled.drain(0.2)
            assert len(stalled.packets) == 1 + DEFAULT_CREDIT
            # It takes them: it catches up with one keyframe of the latest image.
            for p in stalled.packets[1:]:
                await stalled.take(p)
            packet = await stalled.packet()
            assert peek(packet).keyframe
            decoder = FrameDecoder()
            decoder.decode(packet)
            assert frame_index(decoder.image) == 39
        finally:
            s.close()
    run(main())


def frame_index_of(packet, tab):
    """Decode packets in the order a tab received them and give the frame index."""
    if not hasattr(tab, "decoder"):
        tab.decoder = FrameDecoder()
        for p in tab.packets[:-1]:
            tab.decoder.decode(p)
    tab.decoder.decode(packet)
    return frame_index(tab.decoder.image)


async def until(condition, timeout=TIMEOUT):
    """Wait (on the loop) until condition() holds; fail after timeout seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_credit_flows_end_to_end_and_a_closed_tab_leaves_the_figure():
    """The server renders (here: a source publishing on demand) only while a tab takes
    frames; a tab that stops stops it within the credit of the chain; the last tab gone,
    the bridge leaves the figure upstream."""
    async def main():
        s = await setup()
        try:
            source = s.server.add_source((make_frame(i, 160, 120) for i in range(10 ** 6)),
                                         id="anim")
            tab = await s.ws("anim")
            decoder = FrameDecoder()
            for _ in range(20):
                packet = await tab.packet()
                decoder.decode(packet)
                assert np.array_equal(decoder.image, make_frame(decoder.seq - 1, 160, 120))
                await tab.take(packet)
            # The tab stops taking: within its window and the bridge's, the source stops.
            taken = decoder.seq
            await until(lambda: not source.demand)
            assert source.seq - taken <= 2 * DEFAULT_CREDIT
            # It takes again (what it was sent meanwhile, then on): frames flow again.
            stopped = source.seq
            while decoder.seq <= stopped:
                packet = await tab.packet()
                decoder.decode(packet)
                await tab.take(packet)
            assert np.array_equal(decoder.image, make_frame(decoder.seq - 1, 160, 120))
            tab.conn.close()
            await until(lambda: not source.consumers())
        finally:
            s.close()
    run(main())


def test_a_tab_waiting_for_a_figure_gets_it_when_it_appears():
    async def main():
        s = await setup()
        try:
            tab = await s.ws("later")
            assert (await tab.message("welcome"))["info"] is None
            stream = s.server.add_figure("later", 120, 80, title="late")
            stream.publish(make_frame(3, 120, 80))
            packet = await tab.packet()
            assert peek(packet).keyframe
            decoder = FrameDecoder()
            decoder.decode(packet)
            assert np.array_equal(decoder.image, make_frame(3, 120, 80))
        finally:
            s.close()
    run(main())


def test_events_reach_the_figure_and_bad_ones_are_answered():
    async def main():
        s = await setup()
        got = []
        s.stream.on_event(got.append)
        try:
            tab = await s.ws()
            await tab.message("welcome")
            await tab.send(type="event", event={"type": "button_press", "x": 10.5, "y": 20,
                                                "button": 1, "modifiers": ["ctrl", "shift"]})
            await tab.send(type="event", event={"type": "key_press", "key": "ctrl+alt+k"})
            for _ in range(100):
                if len(got) == 2:
                    break
                await asyncio.sleep(0.02)
            assert got[0]["type"] == "button_press" and got[0]["x"] == 10.5
            assert got[0]["modifiers"] == ["ctrl", "shift"] and got[0]["figure"] == "1"
            assert got[1]["key"] == "ctrl+alt+k"
            await tab.send(type="event", event={"type": "button_press", "x": 1})
            error = await tab.message("error")
            assert "button" in error["message"] or "y" in error["message"]
            await tab.conn.write_message("not json")
            assert (await tab.message("error"))["message"].startswith("malformed")
        finally:
            s.close()
    run(main())


def test_download_goes_to_the_figure_owner():
    async def main():
        s = await setup()

        def on_event(event):
            if event["type"] == "toolbar" and event["name"] == "download":
                s.stream.reply(s.stream.sender, P.DOWNLOAD, b"<svg/>" if event["format"] == "svg"
                               else b"\x89PNG...", format=event["format"], mime="image/svg+xml"
                               if event["format"] == "svg" else "image/png")
        s.stream.on_event(on_event)
        try:
            r = await s.get("/download/1.svg")
            assert r.code == 200 and r.body == b"<svg/>"
            assert r.headers["Content-Type"] == "image/svg+xml"
            assert "attachment" in r.headers["Content-Disposition"]
            r = await s.get("/download/2.svg")
            assert r.code == 404
            r = await s.get("/download/1.exe")
            assert r.code == 404
        finally:
            s.close()
    run(main())


def test_server_restart_is_survived():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"

    async def main():
        s = await setup(address)
        try:
            tab = await s.ws()
            first = await tab.packet()
            await tab.take(first)
            s.server.close()
            await tab.message("status")      # the bridge notices the silence
            server = Server(address)
            await server.start()
            s.server = server
            stream = server.add_figure("1", 120, 80, title="again")
            stream.publish(make_frame(5, 120, 80))
            packet = await tab.packet()
            p = peek(packet)
            assert p.keyframe and p.epoch != peek(first).epoch
            decoder = FrameDecoder()
            decoder.decode(packet)
            assert decoder.image.shape == (80, 120, 4) and frame_index(decoder.image) == 5
        finally:
            s.close()
    run(main())


def test_a_bridge_in_front_of_a_relay():
    """The bridge is an ordinary client: it works through a relay (a v2 server) as it
    does directly, events included."""
    from fastfig import Relay
    srv = Server.run_in_thread()
    stream = srv.add_figure("1", 160, 120, title="one")
    stream.publish(make_frame(0))
    relay = Relay(srv.address)

    async def main():
        bridge = Bridge(relay.address)
        await bridge.start()
        s = Setup(srv, bridge, stream)
        try:
            tab = await s.ws()
            decoder = FrameDecoder()
            first = await tab.packet()
            decoder.decode(first)
            await tab.take(first)
            for i in range(1, 20):
                frame = stream.publish(make_frame(i, 160, 120))
                packet = await tab.packet()
                assert packet == bytes(frame)
                decoder.decode(packet)
                await tab.take(packet)
            assert np.array_equal(decoder.image, make_frame(19, 160, 120))
            await tab.send(type="event", event={"type": "key_press", "key": "q"})
            event = await asyncio.get_running_loop().run_in_executor(
                None, lambda: stream.get_event(timeout=5))
            assert event["key"] == "q"
        finally:
            s.http.close()
            bridge.close()
    try:
        run(main())
    finally:
        relay.close()
        srv.close()
