"""Encoding rendered frames in-process with PyAV (FFmpeg's libraries; no ffmpeg binary).

The encoder runs in a thread of its own: PyAV lets go of the GIL while FFmpeg encodes, so
the next frame is drawn and converted while the encoder (and its own threads) work on
this one, and the encoder is not left idle while Python draws.
"""

import io
import queue
import threading
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


#: Converted pictures waiting for the encoder thread: enough to ride over a slow frame,
#: few enough that the pictures (3 MB each at 1080p) cost little memory.
QUEUED = 2


class SegmentEncoder:
    """Encodes one run of frames into a container: a file path, or in memory (``out=None``;
    ``data()`` returns the bytes). The first frame is a keyframe, so segments join without
    re-encoding. ``seconds`` splits the time spent into colour conversion and encoding
    (the encoder thread's time in FFmpeg, which overlaps the drawing)."""

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
        # A picture of the converter's ring is not written again until the encoder has
        # taken it: the queued ones, the one being encoded, the one being converted.
        self.converter = (YUV420Converter(width, height, depth=QUEUED + 2)
                          if fmt.pix_fmt == "yuv420p" else None)
        self.frames = 0
        self.seconds = {"convert": 0.0, "encode": 0.0}
        self._queue = queue.Queue(QUEUED)
        self._failure = None
        self._aborted = False
        self._thread = threading.Thread(target=self._encode_all, daemon=True,
                                        name="fastfig-export-encoder")
        self._thread.start()

    def add(self, rgba):
        """Encode one (H, W, 4) RGBA frame (rgba may be reused once this returns)."""
        t0 = time.perf_counter()
        if self.converter is not None:
            frame = self.converter.convert(rgba)
        else:
            frame = _reformat(rgba, self.fmt.pix_fmt, *even_size(self.width, self.height))
        self.seconds["convert"] += time.perf_counter() - t0
        self._put((frame, self.frames))
        self.frames += 1

    def _put(self, item):
        while True:
            self._raise_failure()
            try:
                self._queue.put(item, timeout=0.5)   # wakes to see a failed encoder
                return
            except queue.Full:
                pass

    def _raise_failure(self):
        if self._failure is not None:
            raise self._failure

    def _encode_all(self):
        try:
            while True:
                item = self._queue.get()
                t = time.perf_counter()
                if item is None:
                    if not self._aborted:
                        self._mux(self.stream.encode(None))
                    self.container.close()
                    self.seconds["encode"] += time.perf_counter() - t
                    return
                frame, pts = item
                frame.pts = pts
                self._mux(self.stream.encode(frame))
                self.seconds["encode"] += time.perf_counter() - t
        except BaseException as e:          # handed to the caller's thread
            self._failure = e

    def _mux(self, packets):
        for packet in packets:
            self.container.mux(packet)

    def close(self):
        """Flush the encoder and finish the container."""
        if self._thread.is_alive():
            self._put(None)
            self._thread.join()
        self._raise_failure()

    def abort(self):
        """Stop the encoder thread after a failure elsewhere (the output is incomplete,
        and the caller discards it): the frames queued are dropped."""
        self._aborted = True
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            try:
                self._queue.put(None, timeout=0.5)
                self._thread.join()
            except queue.Full:
                pass

    def data(self):
        return self._buffer.getvalue()


def _reformat(rgba, pix_fmt, width, height):
    h, w = rgba.shape[:2]
    if (w, h) != (width, height):
        rgba = np.pad(rgba, ((0, height - h), (0, width - w), (0, 0)), mode="edge")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba").reformat(
        format=pix_fmt, threads=1)
