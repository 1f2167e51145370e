"""The .ffrec writer (RECORDING.md): appends records as a stream goes, each whole on
disk once written, and the index and trailer on close."""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO, Optional, Union

import numpy as np

from ..codec.packet import peek
from .format import (
    CHECKPOINT, CHECKPOINT_PREFIX, CLOSED, FILE_HEADER, FORMAT_MAJOR, FORMAT_MINOR, FRAME,
    FRAME_ENTRY, INDEX, INDEX_CLOSED, INDEX_HEAD, MAGIC, MARK_ENTRY, META, STATE, TRAILER,
    END_MAGIC, RecordingError, record_header)


def _json(obj: Any) -> bytes:
    # Sorted and compact: the same metadata always gives the same bytes (golden files).
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class RecordingWriter:
    """Append a recording to ``path`` (or a binary file object): each record is one write,
    flushed, so a reader (or a crash) sees whole records. ``close()`` writes the index and
    trailer. Times are microseconds since the recording's start, given by the caller."""

    def __init__(self, path: Union[str, "os.PathLike[str]", BinaryIO], meta: dict) -> None:
        for key in ("figure", "width", "height"):
            if key not in meta:
                raise ValueError(f"recording metadata needs {key!r}")
        self._own = not hasattr(path, "write")
        self._file: BinaryIO = open(path, "wb") if self._own else path  # type: ignore
        self.meta = dict(meta)
        self.offset = 0
        self.frames = 0
        self._frame_table: list[tuple[int, int]] = []
        self._checkpoints: list[tuple[int, int]] = []
        self._states: list[tuple[int, int]] = []
        self._closed_figure = False
        self.closed = False
        self._write(FILE_HEADER.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, FILE_HEADER.size))
        self._record(META, 0, _json(self.meta))

    def _write(self, *parts: Union[bytes, memoryview]) -> int:
        if self.closed:
            raise RecordingError("the recording is closed")
        at = self.offset
        try:
            for part in parts:          # (a large payload goes to the file uncopied)
                self._file.write(part)
            self._file.flush()
        except BaseException:
            # A record half written (disk full, an interrupt): cut it off, so that the
            # next record (or the index) follows whole records.
            try:
                self._file.seek(at)
                self._file.truncate()
            except Exception:
                pass
            raise
        self.offset += sum(len(part) for part in parts)
        return at

    def _record(self, kind: int, t_us: int, payload: Union[bytes, memoryview]) -> int:
        return self._write(record_header(kind, t_us, payload), payload)

    def frame(self, packet: Union[bytes, memoryview], t_us: int) -> int:
        """Append a frame packet as received; returns its frame index. A keyframe is
        itself a place to start decoding (an index checkpoint)."""
        head = peek(packet)
        at = self._record(FRAME, t_us, packet)
        index = self.frames
        self._frame_table.append((at, int(t_us)))
        if head.keyframe:
            self._checkpoints.append((index, at))
        self.frames += 1
        return index

    def checkpoint(self, frame: int, packet: Union[bytes, memoryview], t_us: int) -> None:
        """Append a keyframe packet of the image after frame ``frame`` (its seq and
        epoch), from which a reader decodes the frames after it."""
        if not peek(packet).keyframe:
            raise ValueError("a checkpoint holds a keyframe packet")
        if not 0 <= frame < self.frames:
            raise ValueError(f"checkpoint of frame {frame}: {self.frames} frames so far")
        at = self._record(CHECKPOINT, t_us, CHECKPOINT_PREFIX.pack(frame) + packet)
        self._checkpoints.append((frame, at))

    def state(self, fields: dict, t_us: int) -> None:
        """Append a change of the figure's state (title, message...), as received."""
        self._states.append((self.frames, self._record(STATE, t_us, _json(fields))))

    def figure_closed(self, t_us: int) -> None:
        """The figure was closed by its server: nothing follows."""
        self._record(CLOSED, t_us, b"")
        self._closed_figure = True

    def close(self, t_us: Optional[int] = None) -> None:
        """Write the index and the trailer, and close the file (if we opened it)."""
        if self.closed:
            return
        t = t_us if t_us is not None else (self._frame_table[-1][1] if self._frame_table
                                           else 0)
        frames = np.array(self._frame_table, FRAME_ENTRY)
        checkpoints = np.array(self._checkpoints, MARK_ENTRY)
        states = np.array(self._states, MARK_ENTRY)
        payload = b"".join([
            INDEX_HEAD.pack(INDEX_CLOSED if self._closed_figure else 0, len(frames),
                            len(checkpoints), len(states)),
            frames.tobytes(), checkpoints.tobytes(), states.tobytes()])
        at = self._record(INDEX, t, payload)
        self._write(TRAILER.pack(at, END_MAGIC))
        self.closed = True
        if self._own:
            self._file.close()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
