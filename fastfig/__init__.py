"""fastfig: stream live, interactive matplotlib figures to any frontend at animation
frame rates.

The frame codec: FrameEncoder turns successive RGBA buffers into keyframes and deltas,
FrameDecoder rebuilds the image from their packets (PROTOCOL.md).
"""

from .decoder import FrameDecoder
from .encoder import FrameEncoder
from .errors import FrameError, FrameGap
from .packet import Encoding, Frame, Rect

__version__ = "0.1.0"

__all__ = ["Encoding", "Frame", "FrameDecoder", "FrameEncoder", "FrameError", "FrameGap",
           "Rect", "__version__"]
