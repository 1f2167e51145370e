"""The viewer's websocket (PROTOCOL.md section 3.4): one browser tab watching one figure,
a Consumer of the figure's Mirror (transport/mirror.py) with a credit window of its own.
Frame packets go out unchanged, one binary message each; credit for the frames the tab
has taken, resync requests and input events come back as small JSON messages, validated
here.
"""

import json

import tornado.websocket

from ..transport import protocol as P
from ..transport.session import MAX_CREDIT
from .handlers import DOWNLOAD_FORMATS, check_request, plain_error


class ViewerSocket(tornado.websocket.WebSocketHandler):
    """One tab watching one figure: packets out; credit, resync and events in."""

    def initialize(self, bridge):
        self.bridge = bridge
        self.mirror = None
        self.consumer = None
        self.bad_messages = 0

    def prepare(self):
        # Runs before the upgrade: a refused socket gets a plain 403 with the reason.
        check_request(self.bridge, self.request)

    def write_error(self, status_code, **kwargs):
        plain_error(self, status_code, kwargs.get("exc_info"))

    def check_origin(self, origin):
        return True   # checked in prepare, with the token

    def get_compression_options(self):
        return None   # packets are compressed already

    def open(self, figure_id):
        # Frames are small and each is waited for: without TCP_NODELAY, Nagle's algorithm
        # holds a packet's last partial segment until the tab's delayed ACK (40 ms on
        # Linux), which capped line1 at 24 of 60 refreshes on an idle machine.
        self.set_nodelay(True)
        bridge = self.bridge
        self.mirror = bridge.watch(figure_id)
        bridge.sockets.add(self)
        upstream = bridge.upstream
        self.send_text(json.dumps({
            "type": "welcome", "v": P.VERSION, "figure": figure_id,
            "info": bridge.figure_info(figure_id), "state": self.mirror.state,
            "credit": bridge.credit, "server": bool(upstream and upstream.connected),
            "downloads": list(DOWNLOAD_FORMATS)}))
        # Its first packet is a keyframe: at once if the mirror has one of the newest
        # image, else once upstream sent one (the figure joined now if it was not).
        self.consumer = self.mirror.attach(self._send_packet, bridge.credit)
        upstream.sync_joins()

    def _send_packet(self, data):
        self._write(data, True)

    def send_text(self, text):
        self._write(text, False)

    def _write(self, message, binary):
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            fut = self.write_message(message, binary=binary)
        except tornado.websocket.WebSocketClosedError:
            return
        fut.add_done_callback(_retrieve)

    def on_message(self, message):
        if isinstance(message, bytes):
            self._bad("binary messages are not expected from a viewer")
            return
        try:
            msg = json.loads(message)
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                raise ValueError("not a JSON object with a type")
        except ValueError as e:
            self._bad(f"malformed message: {e}")
            return
        t = msg["type"]
        if t == "credit":
            n, seq, epoch = msg.get("n", 1), msg.get("seq"), msg.get("epoch")
            if type(n) is not int or not 0 <= n <= MAX_CREDIT:
                self._bad(f"credit needs an integer n in 0..{MAX_CREDIT}")
                return
            if any(v is not None and type(v) is not int for v in (seq, epoch)):
                self._bad("credit's seq and epoch must be integers")
                return
            self.consumer.grant(n, None if seq is None else seq & 0xFFFFFFFF,
                                None if epoch is None else epoch & 0xFFFFFFFF)
        elif t == "event":
            try:
                event = P.check_event(msg.get("event"))
            except P.ProtocolError as e:
                self._bad(str(e))
                return
            self.bridge.upstream.send(P.EVENT, figure=self.mirror.id, event=event)
        elif t == "resync":
            self.consumer.resync()
        elif t == "stats":
            c = self.consumer
            self.send_text(json.dumps({"type": "stats",
                                       "server": self.bridge.stats(self.mirror.id),
                                       "tab": {"sent": c.sent, "keyframes": c.keyframes_sent,
                                               "catch_ups": c.catch_ups_sent}}))
        else:
            self._bad(f"unknown message type {t!r}")

    def _bad(self, message):
        self.bad_messages += 1
        self.send_text(json.dumps({"type": "error", "message": message[:300]}))
        if self.bad_messages > 100:
            self.close(1008, "too many invalid messages")

    def on_close(self):
        self.bridge.sockets.discard(self)
        if self.consumer is not None:
            self.consumer.close()
            self.bridge.viewer_closed(self.mirror)


def _retrieve(fut):
    if not fut.cancelled():
        fut.exception()   # a tab that went away is not an error
