"""Encoding rendered frames in-process with PyAV (FFmpeg's libraries; no ffmpeg binary)."""

import io
import time
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from .colour import YUV420Converter, even_size


def rate(fps):
    """fps as the Fraction FFmpeg takes: 30 -> 30, 30000 / 1001 (29.97003) -> 30000/1001."""
    r = Fraction(fps).limit_denominator(1001)
    if r <= 0:
        raise ValueError(f"fps must be positive, not {fps}")
    return r


class SegmentEncoder:
    """Encodes one run of frames into a container: a file path, or in memory (``out=None``;
    ``data()`` returns the bytes). The first frame is a keyframe, so segments join without
    re-encoding. ``seconds`` splits the time spent into colour conversion and encoding."""

    def __init__(self, fmt, fps, width, height, out=None, final=False, threads=None):
        self.fmt = fmt
        self.width, self.height = width, height
        self._buffer = io.BytesIO() if out is None else None
        self.container = av.open(out if out is not None else self._buffer, "w",
                                 format=fmt.container,
                                 options=dict(fmt.final_options) if final else {})
        stream = self.container.add_stream(fmt.codec, rate=rate(fps),
                                           options=dict(fmt.options))
        stream.width, stream.height = even_size(width, height)
        stream.pix_fmt = fmt.pix_fmt
        ctx = stream.codec_context
        # Frame threads, as the ffmpeg command uses (PyAV's default is slice threads,
        # which x264 runs less efficiently).
        ctx.thread_type = "AUTO"
        if threads:
            ctx.thread_count = threads
        if fmt.bt709:
            # Tagged, so players convert back with the matrix the pixels were made with
            # (untagged HD video is guessed at, and some browsers guess BT.601).
            ctx.color_primaries = ColorPrimaries.BT709
            ctx.color_trc = ColorTrc.BT709
            ctx.colorspace = Colorspace.ITU709
            ctx.color_range = ColorRange.MPEG
        self.stream = stream
        self.converter = (YUV420Converter(width, height) if fmt.pix_fmt == "yuv420p"
                          else None)
        self.frames = 0
        self.seconds = {"convert": 0.0, "encode": 0.0}

    def add(self, rgba):
        """Encode one (H, W, 4) RGBA frame."""
        t0 = time.perf_counter()
        if self.converter is not None:
            frame = self.converter.convert(rgba)
        else:
            frame = _reformat(rgba, self.fmt.pix_fmt, *even_size(self.width, self.height))
        frame.pts = self.frames
        t1 = time.perf_counter()
        self._mux(self.stream.encode(frame))
        self.seconds["convert"] += t1 - t0
        self.seconds["encode"] += time.perf_counter() - t1
        self.frames += 1

    def _mux(self, packets):
        for packet in packets:
            self.container.mux(packet)

    def close(self):
        """Flush the encoder and finish the container."""
        t = time.perf_counter()
        self._mux(self.stream.encode(None))
        self.container.close()
        self.seconds["encode"] += time.perf_counter() - t

    def data(self):
        return self._buffer.getvalue()


def _reformat(rgba, pix_fmt, width, height):
    h, w = rgba.shape[:2]
    if (w, h) != (width, height):
        rgba = np.pad(rgba, ((0, height - h), (0, width - w), (0, 0)), mode="edge")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba").reformat(
        format=pix_fmt, threads=1)
