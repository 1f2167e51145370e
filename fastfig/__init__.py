"""fastfig: stream live, interactive matplotlib figures to any frontend at animation
frame rates.

The frame codec: FrameEncoder turns successive RGBA buffers into keyframes and deltas,
FrameDecoder rebuilds the image from their packets (PROTOCOL.md).
The transport: Server publishes figures' frames over ZeroMQ, Client subscribes to one,
Relay fans a server out (PROTOCOL.md section 2).
"""

from .transport.client import Client, ClientFrame
from .codec.decoder import FrameDecoder
from .codec.encoder import FrameEncoder
from .errors import (CloseError, FastfigError, FigureClosed, FrameError, FrameGap,
                     ProtocolError, ServerError)
from .codec.packet import Encoding, Frame, Rect
from .transport.relay import Relay
from .transport.server import FigureStream, Server

__version__ = "0.1.0"

__all__ = ["Client", "ClientFrame", "CloseError", "Encoding", "FastfigError", "FigureClosed",
           "FigureStream", "Frame", "FrameDecoder", "FrameEncoder", "FrameError", "FrameGap",
           "ProtocolError", "Rect", "Relay", "Server", "ServerError", "__version__"]

#: Streaming matplotlib figures (fastfig.api): loaded on first use, so that importing
#: fastfig for the codec or the transport does not import matplotlib.
_API = ("show", "animate", "widget", "close", "configure", "get_server")


def __getattr__(name):
    if name == "export":      # fastfig.export(anim, path): the package is callable
        import importlib
        return importlib.import_module(".export", __name__)
    if name in _API:
        from .mpl import api
        return getattr(api, name)
    raise AttributeError(f"module 'fastfig' has no attribute {name!r}")
