"""Safe socket defaults shared by the server, the client and the relay: loopback-only
binds, private ipc directories, a ZAP domain, heartbeats, small high-water marks, and
optional CURVE encryption (keys made by ``fastfig keys DIR``).

Why a ZAP domain even without encryption: with NULL security and no ZAP handler libzmq
falls back to ZMTP 1.0 for a peer that does not greet properly, and random bytes on the
port become application messages. With a ZAP domain set, such peers are refused during
the handshake.
"""

import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass

import zmq

#: The ZAP domain every fastfig socket that binds is in.
ZAP_DOMAIN = "fastfig"
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000
HEARTBEAT_TTL_MS = 3000

_TCP = re.compile(r"tcp://(\[[^\]]*\]|[^:/\[\]]*):(\*|\d+)\Z")


class InsecureAddress(ValueError):
    """A bind address that would expose an unencrypted server beyond this machine."""


def private_ipc_dir():
    """A fresh directory only this user can enter (0700), for ipc endpoints: other users
    cannot even reach the socket files. Under $XDG_RUNTIME_DIR when there is one."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.path.isdir(base) or not os.access(base, os.W_OK):
        base = None
    path = tempfile.mkdtemp(prefix="fastfig-", dir=base)  # mkdtemp creates it 0700
    os.chmod(path, 0o700)
    return path


def tcp_host(address):
    """The host part of a tcp:// endpoint (without IPv6 brackets), or None."""
    m = _TCP.match(address)
    if not m:
        return None
    return m.group(1).strip("[]")


def reachable_endpoint(advertised, control_address):
    """The frame endpoint a client connects to, from the one a welcome advertises: a server
    bound on a wildcard ("tcp://0.0.0.0:port") is reached through the host the client
    already used for the control endpoint."""
    if tcp_host(advertised) not in ("*", "0.0.0.0", "::", ""):
        return advertised
    port = advertised.rsplit(":", 1)[1]
    host = tcp_host(control_address)
    if host and ":" in host:
        host = f"[{host}]"
    return f"tcp://{host}:{port}"


def is_loopback(address):
    """True for ipc://, inproc:// and tcp:// endpoints on a loopback address."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    host = tcp_host(address)
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: reaches the network


def check_bind(address, *, curve=False, allow_remote=False):
    if not (curve or allow_remote or is_loopback(address)):
        raise InsecureAddress(
            f"refusing to bind {address!r} without encryption: it is reachable from other "
            "machines. Bind 127.0.0.1 or ipc, enable CURVE (curve_secret_key=...), or pass "
            "allow_remote=True if the network is trusted.")


def tune(sock, *, hwm=None, maxmsgsize=None, heartbeat=True):
    """Options every fastfig socket gets: no linger on close (a dead peer must not keep a
    process alive), heartbeats (a frozen peer is otherwise never detected), and small
    high-water marks where frames flow (the defaults of 1000 messages are gigabytes)."""
    sock.setsockopt(zmq.LINGER, 0)
    if heartbeat:
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TTL_MS)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    if maxmsgsize is not None:
        sock.setsockopt(zmq.MAXMSGSIZE, maxmsgsize)


@dataclass(frozen=True)
class CurveServer:
    """CURVE settings of a binding socket: its secret key, and which clients may connect
    (a directory of ``*.key`` public certificates, or None for any client that knows the
    server's public key)."""

    public_key: bytes
    secret_key: bytes
    clients_dir: str | None = None

    @classmethod
    def load(cls, secret_file, clients_dir=None):
        """From a ``.key_secret`` certificate written by ``fastfig keys``."""
        public, secret = zmq.auth.load_certificate(secret_file)
        if secret is None:
            raise ValueError(f"{secret_file} holds no secret key")
        return cls(public, secret, clients_dir)

    def apply(self, sock):
        sock.curve_secretkey = self.secret_key
        sock.curve_publickey = self.public_key
        sock.curve_server = True


@dataclass(frozen=True)
class CurveClient:
    """CURVE settings of a connecting socket: the server's public key and this client's
    key pair (made fresh when not given; the server must then allow any client)."""

    server_key: bytes
    public_key: bytes = b""
    secret_key: bytes = b""

    @classmethod
    def load(cls, server_public_file, client_secret_file=None):
        server_key, _ = zmq.auth.load_certificate(server_public_file)
        if client_secret_file is None:
            return cls(server_key)
        public, secret = zmq.auth.load_certificate(client_secret_file)
        return cls(server_key, public, secret)

    def apply(self, sock):
        public, secret = self.public_key, self.secret_key
        if not secret:
            public, secret = zmq.curve_keypair()
        sock.curve_serverkey = self.server_key
        sock.curve_publickey = public
        sock.curve_secretkey = secret


def configure_authenticator(auth, curve=None):
    """Point a started zmq.auth authenticator at the policy: NULL peers are allowed (the
    point of the ZAP domain is the handshake check), CURVE peers per the client list."""
    if curve is not None:
        auth.configure_curve(domain=ZAP_DOMAIN, location=curve.clients_dir or zmq.auth.CURVE_ALLOW_ANY)


def make_keys(directory, name="server"):
    """Write a CURVE key pair as ``NAME.key`` (public) and ``NAME.key_secret`` into
    directory (created 0700); returns the two paths."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
    return public, secret

