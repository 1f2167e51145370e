"""fastfig.Client: a Python frontend for one figure of a fastfig server.

It subscribes to the figure's topic, then asks for a snapshot (the zguide Clone pattern):
deltas older than the snapshot are dropped, newer ones that raced ahead of it are kept
and applied after it. Any break in the chain (a frame lost at a high-water mark, a new
epoch after a restart or a resize) sends it back for a snapshot, so it converges to the
current image instead of replaying a backlog. Plain synchronous pyzmq: no event loop.
"""

import collections
import statistics
import time
from dataclasses import dataclass

import numpy as np
import zmq

from . import protocol as P
from . import security
from ..codec.decoder import FrameDecoder
from ..errors import FrameError, FrameGap
from ..codec.packet import HEADER as PACKET_HEADER, FLAG_KEYFRAME, Encoding

#: Frames a subscriber queues (SUB RCVHWM); more are dropped at the server.
DEFAULT_HWM = 4
#: Kernel receive buffer of the frame socket: small, so that a client that stops reading
#: is not left with seconds of frames in the kernel to replay when it resumes.
DEFAULT_RCVBUF = 256 * 1024
#: Deltas kept while a snapshot is awaited (those newer than it are applied after it).
MAX_BUFFERED = 16
#: Frames found waiting at once beyond which they are thrown away for a snapshot.
MAX_BACKLOG = 16


class ServerError(RuntimeError):
    """The server answered with an error (``code`` as in PROTOCOL.md section 2)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """One reconstructed frame. ``image`` is a read-only view of the client's current
    image, updated in place when the generator advances: copy it to keep it. Times are
    seconds of the wall clock (time.time()); latency runs from the server's encode to the
    end of the decode (valid when both ends share a clock)."""

    image: np.ndarray
    seq: int
    epoch: int
    keyframe: bool
    encoded_at: float
    received_at: float
    decoded_at: float
    nbytes: int
    skipped: int

    @property
    def latency(self):
        return self.decoded_at - self.encoded_at

    @property
    def width(self):
        return self.image.shape[1]

    @property
    def height(self):
        return self.image.shape[0]


class Client:
    """Subscribe to one figure of the server at address (its control endpoint).

    figure: the figure id (default: the first figure, waiting up to timeout for one).
    accept: encodings this client decodes (default: all). curve: a security.CurveClient.
    ack_interval: seconds between acknowledgements (None: never). Raises TimeoutError
    when the server does not answer within timeout seconds."""

    def __init__(self, address, figure=None, *, accept=None, curve=None, timeout=5.0,
                 hwm=DEFAULT_HWM, rcvbuf=DEFAULT_RCVBUF, ack_interval=0.05,
                 ping_interval=1.0, dead_after=3.0, snapshot_retry=1.0, name="fastfig-python"):
        self.address = address
        self.curve = curve
        self.hwm = hwm
        self.rcvbuf = rcvbuf
        self.ack_interval = ack_interval
        self.ping_interval = ping_interval
        self.dead_after = dead_after
        self.snapshot_retry = snapshot_retry
        self.name = name
        self.accept = frozenset(Encoding.parse(e) for e in (accept or list(Encoding)))
        self.figure = None
        self.state = {}
        self.closed = False          # the figure was closed by the server
        self.server_id = None
        self.pub_address = None
        self.last_error = None
        self._figures = []
        self._figures_version = 0
        self._decoder = FrameDecoder()
        self._buffer = collections.deque(maxlen=MAX_BUFFERED)
        self._downloads = collections.deque(maxlen=4)
        self._awaiting = None        # monotonic time the outstanding snapshot was asked
        self._sync = None            # (epoch, seq) of a sync not yet checked against
        self._fresh = None           # (keyframe, received_at, nbytes, skipped) of a new image
        self._skipped = 0
        self._last_heard = self._last_sent = self._last_ack = time.monotonic()
        self._last_hello = 0.0
        self._stats = _Stats()
        self._ctx = zmq.Context()
        self._sub = None
        self._dealer = self._ctx.socket(zmq.DEALER)
        security.tune(self._dealer)
        self._dealer.setsockopt(zmq.SNDHWM, 64)
        self._dealer.setsockopt(zmq.RCVHWM, 64)
        # Requests to a dead server are pointless: fail the send instead of queueing.
        self._dealer.setsockopt(zmq.IMMEDIATE, 1)
        if curve is not None:
            curve.apply(self._dealer)
        try:
            self._dealer.connect(address)
            self._handshake(figure, timeout)
        except BaseException:
            self.close()
            raise

    # -- connection ---------------------------------------------------------------------

    def _handshake(self, figure, timeout):
        deadline = time.monotonic() + timeout
        while self.server_id is None:
            self._hello()
            self._wait_dealer(min(deadline, time.monotonic() + 0.5), lambda: self.server_id)
            if time.monotonic() >= deadline and self.server_id is None:
                raise TimeoutError(f"no answer from a fastfig server at {self.address} "
                                   f"within {timeout} s")
        # Wait for the figure (or any figure) to exist: figure lists are announced on the
        # server topic, and asked for here.
        def present():
            if figure is None:
                return bool(self._figures)
            return any(f.get("id") == str(figure) for f in self._figures)
        while not present():
            if time.monotonic() >= deadline:
                raise ServerError(f"the server at {self.address} has "
                                  f"{'no figure' if figure is None else f'no figure {figure!r}'}",
                                  P.E_UNKNOWN_FIGURE)
            self._send(P.FIGURES)
            self._wait_dealer(min(deadline, time.monotonic() + 0.2), present)
        self.figure = str(figure) if figure is not None else self._figures[0]["id"]
        P.check_figure_id(self.figure)
        info = self._figure_info()
        if info is not None:
            self._check_encodings(info)
        self._subscribe()
        self._request_snapshot()

    def _figure_info(self):
        return next((f for f in self._figures if f.get("id") == self.figure), None)

    def _check_encodings(self, info):
        wanted = set()
        for name in info.get("encodings", []):
            try:
                wanted.add(Encoding.parse(name))
            except ValueError:
                wanted.add(name)
        if not wanted <= self.accept:
            raise ServerError(f"figure {self.figure!r} uses encodings "
                              f"{sorted(str(w) for w in wanted - self.accept)} this client "
                              "does not accept", "encoding")

    def _hello(self):
        self._last_hello = time.monotonic()
        self._send(P.HELLO, client=self.name,
                   accept=sorted(e.name.lower() for e in self.accept))

    def _subscribe(self):
        """(Re)connect the frame socket to the server's current pub endpoint."""
        if self._sub is not None:
            self._sub.close(linger=0)
        sub = self._ctx.socket(zmq.SUB)
        security.tune(sub, hwm=self.hwm)
        if self.rcvbuf:
            sub.setsockopt(zmq.RCVBUF, self.rcvbuf)
        if self.curve is not None:
            self.curve.apply(sub)
        sub.setsockopt(zmq.SUBSCRIBE, P.SERVER_TOPIC)
        sub.setsockopt(zmq.SUBSCRIBE, P.topic(self.figure))
        sub.connect(self.pub_address)
        self._sub = sub
        self._joined = False
        self._topic = P.topic(self.figure)
        self._poller = zmq.Poller()
        self._poller.register(self._dealer, zmq.POLLIN)
        self._poller.register(sub, zmq.POLLIN)

    def _send(self, type_, **fields):
        try:
            self._dealer.send_multipart([b"", P.header(type_, **fields)], zmq.NOBLOCK)
            self._last_sent = time.monotonic()
            return True
        except zmq.Again:
            return False   # no server connected: the liveness check will say hello again

    def _request_snapshot(self):
        self._awaiting = time.monotonic()
        self._stats.snapshot_requests += 1
        self._send(P.SNAPSHOT, figure=self.figure)

    # -- receiving -----------------------------------------------------------------------

    def _wait_dealer(self, deadline, done):
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or not self._dealer.poll(left * 1000):
                return
            self._on_dealer(self._dealer.recv_multipart(copy=True))

    def _on_dealer(self, frames):
        self._last_heard = time.monotonic()
        try:
            _, body = P.split_envelope(frames)
            if not body:
                raise P.ProtocolError("reply has no header")
            msg = P.parse_header(body[0])
        except P.ProtocolError as e:
            self._stats.errors += 1
            self.last_error = str(e)
            return
        t = msg["type"]
        if t == P.WELCOME:
            self._on_welcome(msg)
        elif t == P.SNAPSHOT:
            self._on_snapshot(msg, body[1] if len(body) > 1 else None)
        elif t == P.FIGURES:
            self._set_figures(msg.get("figures"))
        elif t == P.DOWNLOAD:
            if msg.get("figure") == self.figure and len(body) == 2:
                self._downloads.append((msg, body[1]))
        elif t == P.PONG:
            if msg.get("server_id") not in (None, self.server_id):
                self._hello()   # a new server answers at the address: start over
        elif t == P.ERROR:
            self._stats.errors += 1
            self.last_error = ServerError(str(msg.get("message", "?")), msg.get("code"))
            if msg.get("code") == P.E_UNKNOWN_FIGURE and self._awaiting is not None:
                self.closed = True

    def _on_welcome(self, msg):
        pub = msg.get("pub")
        if not isinstance(pub, str):
            return
        new_server = msg.get("server_id") != self.server_id
        self.server_id = msg.get("server_id")
        self._set_figures(msg.get("figures"))
        pub = security.reachable_endpoint(pub, self.address)
        if pub != self.pub_address:
            self.pub_address = pub
            if self.figure is not None:
                self._subscribe()
        if new_server and self.figure is not None:
            self._stats.restarts += 1
            self._request_snapshot()

    def _set_figures(self, figures):
        if isinstance(figures, list):
            self._figures = [f for f in figures if isinstance(f, dict) and "id" in f]
            self._figures_version += 1
            if self.figure is not None and self._figure_info() is None:
                self.closed = True   # the close message itself may have been missed

    def _on_snapshot(self, msg, packet):
        if msg.get("figure") != self.figure:
            return
        state = msg.get("state")
        if isinstance(state, dict):
            self.state.update(state)
        if self._awaiting is None:
            # A late answer to a request the stream already satisfied (a keyframe on the
            # topic, or an earlier answer): the image follows the topic now, and an older
            # snapshot (say of the size before a resize) would take it back in time.
            return
        if packet is None:   # nothing published yet: the first frame is a keyframe
            self._awaiting = None
            return
        dec = self._decoder
        try:
            seq, epoch, _ = _peek(packet)
        except FrameError:
            self._stats.errors += 1
            return
        try:
            dec.decode(packet)
        except FrameError as e:
            self._stats.errors += 1
            self.last_error = str(e)
            return
        self._awaiting = None
        self._stats.snapshots += 1
        self._mark_fresh(True, len(packet))
        buffered = sorted((b for b in self._buffer if b[1] == epoch and P.seq_newer(b[0], seq)),
                          key=lambda b: (b[0] - seq) & 0xFFFFFFFF)
        self._buffer.clear()
        for _, _, packet in buffered:
            self._apply(packet)
        self._check_sync()

    def _on_sync(self, msg):
        """The server saw our subscription: frames from now on reach us. Its newest frame
        then was (epoch, seq); if the image is older, what came in between was lost."""
        seq, epoch = msg.get("seq"), msg.get("epoch")
        if isinstance(seq, int) and isinstance(epoch, int):
            self._sync = (epoch, seq)
            self._check_sync()

    def _check_sync(self):
        if self._sync is None or self._awaiting is not None:
            return   # checked once the outstanding snapshot is in
        epoch, seq = self._sync
        self._sync = None
        dec = self._decoder
        if dec.seq is not None and dec.epoch == epoch and not P.seq_newer(seq, dec.seq):
            return
        self._request_snapshot()   # asked after the subscription took: nothing more is lost

    def _on_sub(self, frames):
        self._last_heard = time.monotonic()
        if len(frames) < 2:
            self._stats.errors += 1
            return
        topic, head = frames[0], frames[1]
        if head == P.FRAME_HEADER and topic == self._topic and len(frames) == 3:
            self._on_frame(frames[2])
            return
        try:
            msg = P.parse_header(head)
        except P.ProtocolError as e:
            self._stats.errors += 1
            self.last_error = str(e)
            return
        t = msg["type"]
        if topic == P.SERVER_TOPIC:
            if t == P.FIGURES:
                self._set_figures(msg.get("figures"))
        elif topic == self._topic:
            if t == P.FRAME and len(frames) == 3:
                self._on_frame(frames[2])
            elif t == P.STATE and isinstance(msg.get("state"), dict):
                self.state.update(msg["state"])
            elif t == P.SYNC:
                self._on_sync(msg)
            elif t == P.CLOSE:
                self.closed = True

    def _on_frame(self, packet):
        self._stats.received_bytes += len(packet)
        try:
            seq, epoch, keyframe = _peek(packet)
        except FrameError:
            self._stats.errors += 1
            return
        if self._awaiting is not None and not keyframe:
            self._buffer.append((seq, epoch, packet))
            return
        dec = self._decoder
        if not keyframe and dec.epoch == epoch and dec.seq is not None and not P.seq_newer(seq, dec.seq):
            return   # already in the snapshot
        if self._apply(packet):
            self._sync = None   # a frame sent after the sync applied: the chain is whole

    def _apply(self, packet):
        try:
            self._decoder.decode(packet)
        except FrameGap:
            # Until one delta from the topic has applied, a gap is the join race (deltas
            # published before the subscription took effect), not a loss.
            if self._joined:
                self._stats.gaps += 1
            else:
                self._stats.join_gaps += 1
            seq, epoch, _ = _peek(packet)
            self._buffer.append((seq, epoch, packet))
            if self._awaiting is None:
                self._request_snapshot()
            return False
        except FrameError as e:
            self._stats.errors += 1
            self.last_error = str(e)
            if self._awaiting is None:
                self._request_snapshot()
            return False
        self._joined = True
        if self._awaiting is not None:
            self._awaiting = None   # a keyframe on the topic is as good as a snapshot
        self._mark_fresh(PACKET_HEADER.unpack_from(packet)[4] & FLAG_KEYFRAME != 0, len(packet))
        return True

    def _mark_fresh(self, keyframe, nbytes):
        now = time.time()
        if self._fresh is not None:
            self._skipped += 1
            keyframe = keyframe or self._fresh[0]
            nbytes += self._fresh[2]
        self._fresh = (keyframe, now, nbytes)

    # -- the loop --------------------------------------------------------------------------

    def _pump(self, timeout):
        """Handle messages until a new image is ready or timeout seconds pass. Everything
        already waiting is read before returning, so one yield covers all of it."""
        deadline = time.monotonic() + timeout
        while True:
            self._upkeep()
            left = deadline - time.monotonic()
            ready = self._fresh is not None or self.closed
            wait = 0.0 if ready else max(0.0, min(left, 0.25))
            events = dict(self._poller.poll(wait * 1000))
            if events:
                self._drain(events)
            if self._fresh is not None or self.closed:
                return True
            if left <= 0:
                return False

    def _drain(self, events):
        sub = self._sub
        if self._dealer in events:
            for _ in range(64):
                try:
                    self._on_dealer(self._dealer.recv_multipart(zmq.NOBLOCK, copy=True))
                except zmq.Again:
                    break
        if sub in events:
            backlog = []
            while len(backlog) <= MAX_BACKLOG:
                try:
                    backlog.append(sub.recv_multipart(zmq.NOBLOCK, copy=False))
                except zmq.Again:
                    break
            if len(backlog) > MAX_BACKLOG:
                # Behind by more than a few frames: resync from a snapshot rather than
                # replay; what is still queued is read and dropped (bounded by the HWMs).
                self._stats.backlogs += 1
                dropped = 0
                try:
                    while dropped < 100 * MAX_BACKLOG:
                        sub.recv_multipart(zmq.NOBLOCK, copy=False)
                        dropped += 1
                except zmq.Again:
                    pass
                self._buffer.clear()
                if self._awaiting is None:
                    self._request_snapshot()
                # Still look at non-frame messages (state, close) of what was read.
                for frames in backlog:
                    if frames[1].bytes != P.FRAME_HEADER:
                        self._on_sub([f.bytes for f in frames])
                return
            for frames in backlog:
                self._on_sub([f.buffer if len(f) >= 4096 else f.bytes for f in frames])

    def _upkeep(self):
        now = time.monotonic()
        if self._awaiting is not None and now - self._awaiting > self.snapshot_retry:
            self._request_snapshot()
        if now - self._last_heard > self.dead_after and now - self._last_hello > self.dead_after:
            self._hello()   # server silent: it may have restarted elsewhere
        elif now - self._last_sent > self.ping_interval:
            self._send(P.PING, t=time.time())

    def frames(self, timeout=None):
        """Yield ClientFrames as new images arrive; stop when none arrives for timeout
        seconds (None: wait forever) or the figure is closed. Frames that arrive while the
        consumer is busy are merged: each yield is the newest image."""
        last = time.monotonic()
        while not self.closed:
            wait = 0.25 if timeout is None else max(0.0, last + timeout - time.monotonic())
            if not self._pump(wait):
                if timeout is not None and time.monotonic() - last >= timeout:
                    return
                continue
            if self._fresh is None:
                continue
            last = time.monotonic()
            yield self._take()

    def next_frame(self, timeout=5.0):
        """The next new image, or None after timeout seconds."""
        if self._fresh is None and not self._pump(timeout):
            return None
        return self._take() if self._fresh is not None else None

    def _take(self):
        keyframe, received_at, nbytes = self._fresh
        skipped, self._skipped, self._fresh = self._skipped, 0, None
        dec = self._decoder
        now = time.time()
        frame = ClientFrame(dec.image, dec.seq, dec.epoch, keyframe, dec.timestamp_us / 1e6,
                            received_at, now, nbytes, skipped)
        self._stats.frame(frame)
        mono = time.monotonic()
        if self.ack_interval is not None and mono - self._last_ack >= self.ack_interval:
            self._last_ack = mono
            self._send(P.ACK, figure=self.figure, seq=dec.seq, epoch=dec.epoch)
        return frame

    # -- API ---------------------------------------------------------------------------------

    @property
    def image(self):
        """The current image (read-only view, updated in place), or None."""
        return self._decoder.image

    @property
    def seq(self):
        return self._decoder.seq

    def figures(self, timeout=2.0):
        """The server's figures: [{"id", "title", "width", "height", "encodings"}], asked
        afresh (the last known list if the server does not answer within timeout)."""
        version = self._figures_version
        self._send(P.FIGURES)
        deadline = time.monotonic() + timeout
        while self._figures_version == version and time.monotonic() < deadline:
            self._pump(min(0.05, max(0.0, deadline - time.monotonic())))
        return list(self._figures)

    def send_event(self, type, **fields):
        """Send an input event to the figure (PROTOCOL.md section 2, "Input events"), e.g.
        send_event("button_press", x=10, y=20, button=1). Validated here first."""
        event = P.check_event({"type": type, **fields})
        return self._send(P.EVENT, figure=self.figure, event=event)

    def download(self, format="png", timeout=10.0):
        """The figure saved in format (any savefig format: "png", "svg", "pdf", ...), as
        bytes, asked of the server with a toolbar download event. Raises TimeoutError."""
        self._downloads.clear()
        self.send_event("toolbar", name="download", format=format)
        self._wait_dealer(time.monotonic() + timeout, lambda: self._downloads)
        if not self._downloads:
            raise TimeoutError(f"no {format} download within {timeout} s")
        return self._downloads.popleft()[1]

    def request_keyframe(self):
        """Ask for a snapshot now (the image is rebuilt from it)."""
        self._request_snapshot()

    def stats(self, reset=False):
        """fps, bytes_per_s, latency (median and p95, seconds), frames, skipped (merged),
        gaps (frames lost once streaming), join_gaps (deltas missed while subscribing),
        snapshots, backlogs, restarts, errors."""
        out = self._stats.report()
        if reset:
            self._stats = _Stats()
        return out

    def close(self):
        if self._ctx is None:
            return
        try:
            if self.server_id is not None:
                self._send(P.BYE)
        finally:
            for sock in (self._dealer, self._sub):
                if sock is not None:
                    sock.close(linger=0)
            self._ctx.term()
            self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        return self.frames()


def _peek(packet):
    """(seq, epoch, keyframe) from a packet's header without parsing the rest."""
    if len(packet) < PACKET_HEADER.size:
        raise FrameError("packet shorter than its header")
    head = PACKET_HEADER.unpack_from(packet)
    return head[6], head[5], bool(head[4] & FLAG_KEYFRAME)


class _Stats:
    def __init__(self):
        self.start = time.monotonic()
        self.frames = 0
        self.skipped = 0
        self.bytes = 0
        self.received_bytes = 0
        self.gaps = 0
        self.join_gaps = 0
        self.snapshots = 0
        self.snapshot_requests = 0
        self.backlogs = 0
        self.restarts = 0
        self.errors = 0
        self.latencies = collections.deque(maxlen=4096)

    def frame(self, f):
        self.frames += 1
        self.skipped += f.skipped
        self.bytes += f.nbytes
        self.latencies.append(f.latency)

    def report(self):
        elapsed = max(time.monotonic() - self.start, 1e-9)
        lat = sorted(self.latencies)
        return {"fps": self.frames / elapsed, "bytes_per_s": self.received_bytes / elapsed,
                "latency_median": statistics.median(lat) if lat else None,
                "latency_p95": lat[int(0.95 * (len(lat) - 1))] if lat else None,
                "frames": self.frames, "skipped": self.skipped, "gaps": self.gaps,
                "join_gaps": self.join_gaps,
                "snapshots": self.snapshots, "snapshot_requests": self.snapshot_requests,
                "backlogs": self.backlogs, "restarts": self.restarts, "errors": self.errors,
                "elapsed": elapsed}
