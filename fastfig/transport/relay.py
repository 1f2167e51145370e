"""fastfig.Relay: fans one server out to many subscribers or to other machines.

Frames go through zmq.proxy between an XSUB (connected to the server's XPUB) and an XPUB
(bound here): libzmq copies them without Python in the way, and forwards subscriptions
upstream so the server only sends what someone behind the relay wants. Requests go
through a small control proxy (a ROUTER bound here, a DEALER connected to the server's
ROUTER) that keeps each request's route, so late joiners behind the relay still get
their snapshots from the server; it rewrites the pub endpoint in `welcome` replies to the
relay's own XPUB.
"""

import json
import threading
import time

import zmq
from zmq.auth.thread import ThreadAuthenticator

from . import protocol as P
from . import security


class Relay:
    """Relay the server whose control endpoint is ``connect``.

    bind: the relay's control endpoint (default: tcp://127.0.0.1 on a free port; "ipc"
    for a private ipc directory); pub_bind: its frame endpoint (default: next to bind).
    curve: a security.CurveServer for the relay's bound sockets; upstream_curve: a
    security.CurveClient to reach an encrypted server. Starts at once; ``close()`` stops.
    """

    def __init__(self, connect, bind=None, *, pub_bind=None, curve=None, upstream_curve=None,
                 allow_remote=False, hwm=4, timeout=5.0):
        self.upstream = connect
        self._ctx = zmq.Context()
        self._auth = None
        self._threads = []
        self._ipc_dir = None
        try:
            self._setup(connect, bind, pub_bind, curve, upstream_curve, allow_remote, hwm,
                        timeout)
        except BaseException:
            self._shutdown_sockets()
            raise

    def _setup(self, connect, bind, pub_bind, curve, upstream_curve, allow_remote, hwm,
               timeout):
        ctx = self._ctx
        if bind in (None, "tcp"):
            bind = "tcp://127.0.0.1:*"
        elif bind == "ipc":
            self._ipc_dir = security.private_ipc_dir()
            bind = f"ipc://{self._ipc_dir}/ctl"
        if pub_bind is None:
            pub_bind = (f"tcp://{bind[6:].rsplit(':', 1)[0]}:*" if bind.startswith("tcp://")
                        else bind + "-pub")
        for a in (bind, pub_bind):
            security.check_bind(a, curve=curve is not None, allow_remote=allow_remote)
        self._auth = ThreadAuthenticator(ctx)
        self._auth.start()
        security.configure_authenticator(self._auth, curve)

        # Upstream: learn the server's pub endpoint with a hello of our own.
        backend = ctx.socket(zmq.DEALER)
        security.tune(backend)
        if upstream_curve is not None:
            upstream_curve.apply(backend)
        backend.connect(connect)
        self._backend = backend
        welcome = self._hello(backend, timeout)
        upstream_pub = welcome["pub"]
        host = security.tcp_host(upstream_pub)
        if host in ("*", "0.0.0.0", "::", ""):
            upstream_pub = f"tcp://{security.tcp_host(connect)}:{upstream_pub.rsplit(':', 1)[1]}"

        xsub = ctx.socket(zmq.XSUB)
        security.tune(xsub, hwm=hwm)
        if upstream_curve is not None:
            upstream_curve.apply(xsub)
        xsub.connect(upstream_pub)
        xpub = ctx.socket(zmq.XPUB)
        frontend = ctx.socket(zmq.ROUTER)
        for sock in (xpub, frontend):
            sock.setsockopt(zmq.ZAP_DOMAIN, security.ZAP_DOMAIN.encode())
            if curve is not None:
                curve.apply(sock)
        security.tune(xpub, hwm=hwm)
        # Forward every subscription upstream, so the server answers each joiner behind
        # the relay with a sync message (PROTOCOL.md section 2, late joiners).
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        security.tune(frontend, maxmsgsize=P.MAX_REQUEST_BYTES)
        self._xsub, self._xpub, self._frontend = xsub, xpub, frontend
        xpub.bind(pub_bind)
        frontend.bind(bind)
        self.pub_address = xpub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.address = frontend.getsockopt_string(zmq.LAST_ENDPOINT)
        self.upstream_pub = upstream_pub

        # Both loops stop when told over inproc pairs, so close() is prompt.
        self._stops = []
        data_ctl, data_ctl_peer = self._pair("data")
        ctl_ctl, ctl_ctl_peer = self._pair("control")
        self._stops = [data_ctl, ctl_ctl]
        self._threads = [
            threading.Thread(target=self._run_data, args=(data_ctl_peer,),
                             name="fastfig-relay-data", daemon=True),
            threading.Thread(target=self._run_control, args=(ctl_ctl_peer,),
                             name="fastfig-relay-control", daemon=True)]
        for t in self._threads:
            t.start()

    def _pair(self, name):
        a = self._ctx.socket(zmq.PAIR)
        b = self._ctx.socket(zmq.PAIR)
        endpoint = f"inproc://fastfig-relay-{name}-{id(self)}"
        b.bind(endpoint)
        a.connect(endpoint)
        a.setsockopt(zmq.LINGER, 0)
        b.setsockopt(zmq.LINGER, 0)
        return a, b

    def _hello(self, backend, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            backend.send_multipart([b"", P.header(P.HELLO, client="fastfig-relay")])
            if backend.poll(min(500, max(1, (deadline - time.monotonic()) * 1000))):
                frames = backend.recv_multipart()
                try:
                    _, body = P.split_envelope(frames)
                    msg = P.parse_header(body[0])
                except (P.ProtocolError, IndexError):
                    continue
                if msg["type"] == P.WELCOME and isinstance(msg.get("pub"), str):
                    return msg
                if msg["type"] == P.ERROR:
                    raise RuntimeError(f"server refused the relay: {msg.get('message')}")
        raise TimeoutError(f"no fastfig server answered at {self.upstream}")

    def _run_data(self, ctl):
        try:
            zmq.proxy_steerable(self._xsub, self._xpub, None, ctl)
        except zmq.ZMQError:
            pass

    def _run_control(self, ctl):
        frontend, backend = self._frontend, self._backend
        poller = zmq.Poller()
        poller.register(frontend, zmq.POLLIN)
        poller.register(backend, zmq.POLLIN)
        poller.register(ctl, zmq.POLLIN)
        while True:
            try:
                events = dict(poller.poll())
            except zmq.ZMQError:
                return
            if ctl in events:
                return
            if frontend in events:
                frames = frontend.recv_multipart(copy=False)
                try:
                    backend.send_multipart(frames, zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    pass   # server unreachable: the client retries
            if backend in events:
                frames = backend.recv_multipart(copy=False)
                if len(frames[0]) == 0:
                    continue   # a reply to the relay's own hello
                frames = self._rewrite(frames)
                try:
                    frontend.send_multipart(frames, zmq.NOBLOCK, copy=False)
                except zmq.ZMQError:
                    pass

    def _rewrite(self, frames):
        """Point `welcome` replies at the relay's XPUB instead of the server's."""
        for i, f in enumerate(frames):
            if len(f) == 0:
                if i + 1 < len(frames) and b'"welcome"' in frames[i + 1].bytes:
                    try:
                        msg = json.loads(frames[i + 1].bytes)
                    except ValueError:
                        return frames
                    if isinstance(msg, dict) and msg.get("type") == P.WELCOME:
                        msg["pub"] = self.pub_address
                        frames = list(frames)
                        frames[i + 1] = json.dumps(msg, separators=(",", ":")).encode()
                return frames
        return frames

    def close(self):
        for stop in getattr(self, "_stops", []):
            try:
                stop.send(b"TERMINATE")
            except zmq.ZMQError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        self._shutdown_sockets()

    def _shutdown_sockets(self):
        if self._ctx is None:
            return
        if self._auth is not None:
            self._auth.stop()
        self._ctx.destroy(linger=0)
        self._ctx = None
        if self._ipc_dir is not None:
            import shutil
            shutil.rmtree(self._ipc_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait(self):
        """Block until the relay stops (for the command line)."""
        for t in self._threads:
            while t.is_alive():
                t.join(timeout=0.5)
