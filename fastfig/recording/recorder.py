"""The Recorder: writes the packets a client applies to a .ffrec file, with checkpoints.

Fed by a Client (``Client.record(path)``) or by anything that has packets and the images
they decode to (the export of an animation to .ffrec). Frame records are the packets
exactly as applied, so the recording decodes to exactly the images the client saw; a
checkpoint (a keyframe the recorder encodes from the decoded image) is written every
``checkpoint_frames`` frames or ``checkpoint_seconds`` seconds, whichever comes first,
unless a keyframe came in the stream meanwhile, so that seeking decodes few deltas.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading
import time
from typing import Any, Callable, Optional, Union

import numpy as np

from .. import __version__
from ..codec.encoder import FrameEncoder
from ..codec.packet import VERSION_MAJOR, VERSION_MINOR, peek
from .format import FORMAT_MAJOR, FORMAT_MINOR
from .writer import RecordingWriter

#: Checkpoint spacing. At 1920x1080 (bench/bench_recording.py) a checkpoint of line1
#: costs a ~10 ms keyframe encode, and a seek a ~10 ms keyframe decode plus ~0.6 ms per
#: delta after it: at 60 frames the median seek took ~50 ms, at 30 about half.
CHECKPOINT_FRAMES = 30
CHECKPOINT_SECONDS = 5.0


def metadata(figure: str, width: int, height: int, *, title: str = "",
             source: Optional[str] = None, start: Optional[float] = None,
             **extra: Any) -> dict:
    """The metadata record of a new recording (RECORDING.md, "Metadata")."""
    return {"format": f"{FORMAT_MAJOR}.{FORMAT_MINOR}", "figure": str(figure),
            "width": int(width), "height": int(height), "title": str(title),
            "fastfig": __version__, "packet_version": f"{VERSION_MAJOR}.{VERSION_MINOR}",
            "start": time.time() if start is None else float(start),
            **({"source": source} if source is not None else {}), **extra}


class Recorder:
    """Write a figure's stream to path. Call ``frame(packet, image)`` with each packet
    applied and the image after it, ``state(fields)`` with state changes,
    ``figure_closed()`` when the figure closes and ``close()`` at the end (writes the
    index; a with-block does it). Deltas before the first keyframe are left out: a
    recording starts with a whole image.

    clock: seconds, for the records' times (time.monotonic; the export passes frame
    times instead). checkpoint_frames / checkpoint_seconds: the checkpoint spacing (0:
    none of that kind). background: encode checkpoints in a thread of their own (the
    client's thread pays a copy of the image, not a keyframe encode; the checkpoint
    record lands a few records later); False writes each right after its frame (the
    same input always gives the same file)."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], meta: dict, *,
                 checkpoint_frames: int = CHECKPOINT_FRAMES,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 background: bool = True) -> None:
        if checkpoint_frames < 0 or checkpoint_seconds < 0:
            raise ValueError("checkpoint spacing must not be negative")
        self.path = os.fspath(path)
        self.checkpoint_frames = int(checkpoint_frames)
        self.checkpoint_seconds = float(checkpoint_seconds)
        self._clock = clock
        self._t0 = clock()
        meta = {**meta, "checkpoint_frames": self.checkpoint_frames,
                "checkpoint_seconds": self.checkpoint_seconds}
        self.writer = RecordingWriter(self.path, meta)
        self.skipped = 0              # deltas before the first keyframe
        self.checkpoints = 0
        self._encoder: Optional[FrameEncoder] = None
        self._since_mark = 0          # frames since the last keyframe or checkpoint
        self._mark_t = 0.0
        self._on_close: list[Callable[[], None]] = []
        self._lock = threading.Lock()         # one record at a time
        self._pool = (concurrent.futures.ThreadPoolExecutor(1, "fastfig-checkpoint")
                      if background else None)
        self._pending: Optional[concurrent.futures.Future] = None

    @property
    def frames(self) -> int:
        return self.writer.frames

    @property
    def nbytes(self) -> int:
        """Bytes written so far."""
        return self.writer.offset

    @property
    def closed(self) -> bool:
        return self.writer.closed

    def _t_us(self, t: Optional[float]) -> int:
        return round(((self._clock() if t is None else t) - self._t0) * 1e6)

    def frame(self, packet: Any, image: Optional[np.ndarray], t: Optional[float] = None) -> None:
        """A packet the client applied and the image it decoded to (for checkpoints);
        t: its time on the clock (default: now)."""
        if self.closed:
            return
        head = peek(packet)
        if not head.keyframe and self.frames == 0:
            self.skipped += 1
            return
        t_us = self._t_us(t)
        with self._lock:
            index = self.writer.frame(packet, t_us)
        if head.keyframe:
            self._since_mark, self._mark_t = 0, t_us / 1e6
            return
        self._since_mark += 1
        due = ((self.checkpoint_frames and self._since_mark >= self.checkpoint_frames)
               or (self.checkpoint_seconds
                   and t_us / 1e6 - self._mark_t >= self.checkpoint_seconds))
        if not due or image is None:
            return
        args = (index, head.seq, head.epoch, head.timestamp_us, t_us)
        if self._pool is None:
            self._checkpoint(image, *args)
        elif self._pending is None or self._pending.done():
            # (One in flight at a time: when encoding lags, the next one is later.)
            self._settle()
            self._pending = self._pool.submit(self._checkpoint, image.copy(), *args)
        else:
            return
        self._since_mark, self._mark_t = 0, t_us / 1e6

    def _checkpoint(self, image: np.ndarray, index: int, seq: int, epoch: int,
                    timestamp_us: int, t_us: int) -> None:
        packet = self.keyframe_of(image, seq, epoch, timestamp_us)
        with self._lock:
            if not self.writer.closed:
                self.writer.checkpoint(index, packet, t_us)
                self.checkpoints += 1

    def _settle(self) -> None:
        """Wait for the checkpoint in flight; raise what it raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def keyframe_of(self, image: np.ndarray, seq: int, epoch: int, timestamp_us: int) -> bytes:
        """A keyframe packet of image carrying the stream's seq and epoch, so the deltas
        after it apply to it."""
        h, w = image.shape[:2]
        if self._encoder is None or (self._encoder.width, self._encoder.height) != (w, h):
            self._encoder = FrameEncoder(w, h)
        frame = self._encoder.keyframe(image)
        return bytes(dataclasses.replace(frame, seq=seq, epoch=epoch,
                                         timestamp_us=timestamp_us))

    def state(self, fields: dict, t: Optional[float] = None) -> None:
        if not self.closed and fields:
            with self._lock:
                self.writer.state(fields, self._t_us(t))

    def figure_closed(self, t: Optional[float] = None) -> None:
        if not self.closed:
            with self._lock:
                self.writer.figure_closed(self._t_us(t))

    def on_close(self, handler: Callable[[], None]) -> None:
        self._on_close.append(handler)

    def close(self) -> None:
        """Write the index and close the file; safe to call twice."""
        if self.closed:
            return
        try:
            self._settle()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            with self._lock:
                self.writer.close()
        for handler in self._on_close:
            handler()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def for_client(client: Any, path: Union[str, "os.PathLike[str]"], **options: Any) -> Recorder:
    """A Recorder of client's figure (``Client.record``): metadata from the figure list,
    the state known so far written first, and a keyframe asked for when the client
    already holds an image (the recording starts with a whole image)."""
    info: dict = next((f for f in client.figures(timeout=0)
                       if f.get("id") == client.figure), {})
    image = client.image
    height, width = (image.shape[:2] if image is not None
                     else (info.get("height", 0), info.get("width", 0)))
    title = client.state.get("title", info.get("title", ""))
    recorder = Recorder(path, metadata(client.figure, width, height, title=title,
                                       source=client.address), **options)
    recorder.state(dict(client.state))
    if image is not None:
        client.resync()
    return recorder


__all__ = ["Recorder", "metadata", "for_client"]
