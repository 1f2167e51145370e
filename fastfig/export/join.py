"""Joining encoded segments into one file without re-encoding.

Each segment is a complete container whose video starts with a keyframe and whose
timestamps start at zero. Its packets are copied into the output as they are, their
timestamps moved by the frames before the segment. Segments come from encoders with the
same settings, so their streams share the reorder delay: decode timestamps stay
increasing across a join, B-frames included.
"""

import io
from fractions import Fraction

import av

from .errors import ExportError


def join(segments, path, fmt, fps):
    """Write the segments (container bytes, in order; (bytes, frames) pairs) to path as
    one stream of fmt at fps."""
    frame = 1 / Fraction(fps)
    out = av.open(path, "w", format=fmt.container, options=dict(fmt.final_options))
    try:
        ostream = None
        template = None
        offset = 0
        for data, frames in segments:
            with av.open(io.BytesIO(data), "r") as inp:
                stream = inp.streams.video[0]
                if ostream is None:
                    template = _params(stream)
                    ostream = out.add_stream_from_template(stream)
                elif _params(stream) != template:
                    raise ExportError("segments were encoded with different settings "
                                      "and cannot be joined without re-encoding")
                shift = int(offset * frame / stream.time_base)
                for packet in inp.demux(stream):
                    if packet.size == 0:          # the demuxer's end-of-stream marker
                        continue
                    if packet.pts is not None:
                        packet.pts += shift
                    if packet.dts is not None:
                        packet.dts += shift
                    packet.stream = ostream
                    out.mux(packet)
            offset += frames
    finally:
        out.close()


def _params(stream):
    ctx = stream.codec_context
    return (ctx.name, ctx.width, ctx.height, ctx.format.name if ctx.format else None,
            bytes(ctx.extradata or b""))
