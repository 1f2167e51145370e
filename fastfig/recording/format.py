"""The .ffrec file (RECORDING.md): its layout, and the reader, which seeks through the
index written on close or scans a file that has none (the writer is in writer.py).

Layout: a 16-byte file header (magic, format version), then records: a 20-byte record
header (payload length, kind, time, CRC32) and its payload. The first record is the
metadata (JSON); frame records hold packets exactly as a client applied them; checkpoint
records hold keyframes of the image after a frame, so seeking decodes a few deltas, not
the whole stream; the last record is the index, found through a 16-byte trailer.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

import numpy as np
from numpy.typing import NDArray

from ..codec.decoder import FrameDecoder
from ..codec.packet import peek
from ..errors import FastfigError, FrameError

MAGIC = b"\x89FFREC\r\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
FILE_HEADER = struct.Struct("<8sHHI")          # magic, major, minor, header size
RECORD = struct.Struct("<IBBHqI")              # length, kind, flags, reserved, t_us, crc
TRAILER = struct.Struct("<Q8s")                # offset of the index record, end magic
END_MAGIC = b"FFRECIDX"
assert FILE_HEADER.size == 16 and RECORD.size == 20 and TRAILER.size == 16

#: Record kinds (the byte at offset 4 of a record header).
META, FRAME, CHECKPOINT, STATE, CLOSED, INDEX = range(6)
KIND_NAMES = {META: "metadata", FRAME: "frame", CHECKPOINT: "checkpoint", STATE: "state",
              CLOSED: "closed", INDEX: "index"}
#: A checkpoint's payload starts with the index of the frame whose image it holds.
CHECKPOINT_PREFIX = struct.Struct("<I")
INDEX_HEAD = struct.Struct("<IIII")            # flags, frames, checkpoints, states
FRAME_ENTRY = np.dtype([("offset", "<u8"), ("t_us", "<i8")])
MARK_ENTRY = np.dtype([("frame", "<u4"), ("offset", "<u8")])
#: Index flag: the figure was closed while recording (a CLOSED record is in the file).
INDEX_CLOSED = 1
#: A record's payload is an unsigned 32-bit length.
MAX_PAYLOAD = 2**32 - 1

Image = NDArray[np.uint8]


class RecordingError(FastfigError, ValueError):
    """Not a recording, a recording of a format version this reader does not read, or a
    frame asked for that the damage made unreachable."""


@dataclass(frozen=True)
class Damage:
    """What is wrong with the end of a recording: ``kind`` is "truncated" (the file ends
    inside a record), "corrupt" (a record's CRC or structure is wrong) or "unclosed" (every
    record is whole but the index is missing: the recorder did not close); ``offset`` is
    the byte where the damage starts, ``frames`` the whole frames before it."""

    kind: str
    offset: int
    frames: int
    detail: str

    def __str__(self) -> str:
        return (f"recording {self.kind} at byte {self.offset} ({self.detail}): "
                f"{self.frames} whole frame{'s' if self.frames != 1 else ''} before it")


def _crc(head: bytes, payload: Union[bytes, memoryview]) -> int:
    return zlib.crc32(payload, zlib.crc32(head[:16])) & 0xFFFFFFFF


def record_header(kind: int, t_us: int, payload: Union[bytes, memoryview]) -> bytes:
    """The 20-byte header of a record of payload (its CRC covers the payload)."""
    if len(payload) > MAX_PAYLOAD:
        raise RecordingError(f"a {KIND_NAMES[kind]} record of {len(payload)} bytes is "
                             f"over the format's {MAX_PAYLOAD}")
    head = RECORD.pack(len(payload), kind, 0, 0, int(t_us), 0)
    return head[:16] + struct.pack("<I", _crc(head, payload))


class _Record:
    __slots__ = ("kind", "t_us", "offset", "payload")

    def __init__(self, kind: int, t_us: int, offset: int, payload: bytes) -> None:
        self.kind, self.t_us, self.offset, self.payload = kind, t_us, offset, payload


class _Bad(Exception):
    """A record that cannot be read: (kind of damage, detail)."""


def _read_record(fd: int, offset: int, size: int) -> _Record:
    head = os.pread(fd, RECORD.size, offset)
    if len(head) < RECORD.size:
        raise _Bad("truncated", f"the file ends inside a record header ({len(head)} of "
                   f"{RECORD.size} bytes)")
    length, kind, _flags, _res, t_us, crc = RECORD.unpack(head)
    if offset + RECORD.size + length > size:
        have = size - offset - RECORD.size
        name = KIND_NAMES.get(kind, f"kind {kind}")
        article = "an" if name[0] in "aeiou" else "a"
        raise _Bad("truncated", f"the file ends inside {article} {name} record ({have} "
                   f"of {length} bytes)")
    payload = os.pread(fd, length, offset + RECORD.size)
    if _crc(head, payload) != crc:
        raise _Bad("corrupt", f"CRC mismatch in the record at byte {offset}")
    if kind not in KIND_NAMES:
        raise _Bad("corrupt", f"unknown record kind {kind}")
    return _Record(kind, t_us, offset, payload)


class Recording:
    """A recording opened for reading (``open_recording``). ``meta``: the metadata dict;
    ``len(rec)``: frames; ``rec.times``: their times in seconds since the start;
    ``rec.image(i)``: frame i's RGBA image (H, W, 4) uint8, seeking from the nearest
    checkpoint; iteration: (t, rgba) in order, stopping before any damage; ``damage``: a
    Damage describing a truncated, corrupt or unclosed file, else None; ``states``:
    [(frame index it precedes, t, fields)]."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, verify: bool = False) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            self._open(verify)
        except BaseException:
            os.close(self._fd)
            raise
        self._decoder: Optional[FrameDecoder] = None
        self._at = -1           # the frame the decoder holds

    def _open(self, verify: bool) -> None:
        self.size = os.fstat(self._fd).st_size
        self.meta: dict = {}
        self.damage: Optional[Damage] = None
        self.figure_closed = False
        self._start = 0         # where the records after the metadata start (0: unread)
        head = os.pread(self._fd, FILE_HEADER.size, 0)
        if not MAGIC.startswith(head[:8]) or (len(head) >= 8 and head[:8] != MAGIC):
            raise RecordingError(f"{self.path} is not a fastfig recording")
        self._offsets = np.zeros(0, np.uint64)
        self._t_us = np.zeros(0, np.int64)
        self._marks: list[tuple[int, int]] = []
        self.states: list[tuple[int, float, dict]] = []
        if len(head) < FILE_HEADER.size:
            self.damage = Damage("truncated", len(head), 0, "the file ends inside its header")
            return
        _, major, minor, header_size = FILE_HEADER.unpack(head)
        if major != FORMAT_MAJOR:
            raise RecordingError(f"{self.path} is a version {major}.{minor} recording; "
                                 f"this reader reads version {FORMAT_MAJOR}.x")
        try:
            meta = _read_record(self._fd, header_size, self.size)
            if meta.kind != META:
                raise _Bad("corrupt", "the first record is not the metadata")
            self.meta = json.loads(meta.payload)
        except _Bad as e:
            self.damage = Damage(e.args[0], header_size, 0, e.args[1])
            return
        except ValueError:
            self.damage = Damage("corrupt", header_size, 0, "the metadata is not JSON")
            return
        self._start = meta.offset + RECORD.size + len(meta.payload)
        if verify or not self._read_index():
            self._scan()

    def _read_index(self) -> bool:
        """Load the index through the trailer; False when there is none or it is bad."""
        if self.size < self._start + TRAILER.size:
            return False
        at, magic = TRAILER.unpack(os.pread(self._fd, TRAILER.size, self.size - TRAILER.size))
        if magic != END_MAGIC or not self._start <= at < self.size - TRAILER.size:
            return False
        try:
            rec = _read_record(self._fd, at, self.size - TRAILER.size)
            if rec.kind != INDEX:
                return False
            flags, nframes, nmarks, nstates = INDEX_HEAD.unpack_from(rec.payload)
            pos = INDEX_HEAD.size
            frames = np.frombuffer(rec.payload, FRAME_ENTRY, nframes, pos)
            pos += frames.nbytes
            marks = np.frombuffer(rec.payload, MARK_ENTRY, nmarks, pos)
            pos += marks.nbytes
            states = np.frombuffer(rec.payload, MARK_ENTRY, nstates, pos)
        except (_Bad, struct.error, ValueError):
            return False
        self._offsets = frames["offset"].copy()
        self._t_us = frames["t_us"].copy()
        self._marks = [(int(f), int(o)) for f, o in marks]
        self.figure_closed = bool(flags & INDEX_CLOSED)
        for frame, offset in states:
            try:
                self._add_state(int(frame), _read_record(self._fd, int(offset), self.size))
            except (_Bad, ValueError):
                pass        # a state lost costs a title, not the frames
        return True

    def _add_state(self, frame: int, rec: _Record) -> None:
        fields = json.loads(rec.payload)
        if isinstance(fields, dict):
            self.states.append((frame, rec.t_us / 1e6, fields))

    def _scan(self) -> None:
        """Read every record from the start, checking each CRC: the whole-file check,
        and the way to read a file without its index (still being written, or cut)."""
        offsets: list[int] = []
        times: list[int] = []
        marks: list[tuple[int, int]] = []
        self.states = []
        offset = self._start
        end = self.size
        while offset < end:
            try:
                rec = _read_record(self._fd, offset, end)
                if rec.kind == FRAME:
                    head = peek(rec.payload)
                    if head.keyframe:
                        marks.append((len(offsets), offset))
                    offsets.append(offset)
                    times.append(rec.t_us)
                elif rec.kind == CHECKPOINT:
                    (frame,) = CHECKPOINT_PREFIX.unpack_from(rec.payload)
                    if not 0 <= frame < len(offsets):
                        raise _Bad("corrupt", f"a checkpoint of frame {frame} after "
                                   f"{len(offsets)} frames")
                    marks.append((frame, offset))
                elif rec.kind == STATE:
                    self._add_state(len(offsets), rec)
                elif rec.kind == CLOSED:
                    self.figure_closed = True
                elif rec.kind == INDEX:
                    after = offset + RECORD.size + len(rec.payload)
                    if end - after == TRAILER.size:
                        break               # whole: the index and its trailer end the file
                    raise _Bad("truncated" if end - after < TRAILER.size else "corrupt",
                               "the index is not followed by its trailer")
                else:
                    raise _Bad("corrupt", "a second metadata record")
            except _Bad as e:
                self.damage = Damage(e.args[0], offset, len(offsets), e.args[1])
                break
            except (FrameError, ValueError, struct.error) as e:
                self.damage = Damage("corrupt", offset, len(offsets), str(e))
                break
            offset = rec.offset + RECORD.size + len(rec.payload)
        else:
            self.damage = Damage("unclosed", offset, len(offsets),
                                 "no index: the recorder was not closed")
        self._offsets = np.array(offsets, np.uint64)
        self._t_us = np.array(times, np.int64)
        self._marks = marks

    # -- the frames ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def times(self) -> NDArray[np.float64]:
        """Each frame's time, seconds since the recording's start."""
        return self._t_us / 1e6

    @property
    def duration(self) -> float:
        return float(self._t_us[-1] - self._t_us[0]) / 1e6 if len(self) else 0.0

    def packet(self, i: int) -> bytes:
        """Frame i's packet exactly as it was received (raises RecordingError)."""
        return self._frame_record(i).payload

    def _frame_record(self, i: int) -> _Record:
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} of a recording of {len(self)} frames")
        try:
            rec = _read_record(self._fd, int(self._offsets[i]), self.size)
        except _Bad as e:
            self._damaged(e, int(self._offsets[i]), i)
            raise RecordingError(f"frame {i}: {e.args[1]}") from None
        if rec.kind != FRAME:
            raise RecordingError(f"frame {i}: the index points at a "
                                 f"{KIND_NAMES[rec.kind]} record")
        return rec

    def _damaged(self, e: _Bad, offset: int, frames: int) -> None:
        # Damage found while reading (the index spared the scan): the first one counts.
        if self.damage is None or offset < self.damage.offset:
            self.damage = Damage(e.args[0], offset, frames, e.args[1])

    def image(self, i: int) -> Image:
        """Frame i's image, a new (H, W, 4) uint8 array. Decodes from the nearest
        checkpoint at or before i (or from where the last call left off, when nearer)."""
        return self.view(i).copy()

    def view(self, i: int) -> Image:
        """Frame i's image as ``image(i)``, but a read-only view that the next call
        changes (no copy: for a consumer that encodes or converts it at once)."""
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} of a recording of {len(self)} frames")
        mark = self._mark_before(i)
        if self._decoder is None or not mark[0] <= self._at <= i:
            self._start_at(*mark)
        while self._at < i:
            self._apply(self._at + 1)
        assert self._decoder is not None and self._decoder.image is not None
        return self._decoder.image

    def _mark_before(self, i: int) -> tuple[int, int]:
        best = None
        for frame, offset in self._marks:
            if frame <= i and (best is None or frame >= best[0]):
                best = (frame, offset)
        if best is None:
            raise RecordingError(f"frame {i}: no keyframe or checkpoint before it")
        return best

    def _start_at(self, frame: int, offset: int) -> None:
        self._decoder = FrameDecoder()
        self._at = -1
        try:
            rec = _read_record(self._fd, offset, self.size)
        except _Bad as e:
            self._damaged(e, offset, frame)
            raise RecordingError(f"the checkpoint of frame {frame}: {e.args[1]}") from None
        packet = rec.payload if rec.kind == FRAME else rec.payload[CHECKPOINT_PREFIX.size:]
        self._decode(packet, frame)

    def _apply(self, i: int) -> None:
        self._decode(self._frame_record(i).payload, i)

    def _decode(self, packet: bytes, i: int) -> None:
        assert self._decoder is not None
        try:
            self._decoder.decode(packet)
        except FrameError as e:
            self._decoder = None
            self._at = -1
            if i < len(self):
                self._damaged(_Bad("corrupt", f"frame {i} does not decode: {e}"),
                              int(self._offsets[i]), i)
            raise RecordingError(f"frame {i} does not decode: {e}") from None
        self._at = i

    def frames(self, start: int = 0, *, strict: bool = False) -> Iterator[tuple[float, Image]]:
        """Yield (t seconds, rgba) for frames start.. in order; rgba is a read-only view
        updated by the next step (copy it to keep it). Stops at damage (see ``damage``);
        strict: raise RecordingError there instead."""
        i = start
        while i < len(self):
            try:
                if i == start:
                    self.view(i)
                else:
                    self._apply(i)
            except RecordingError:
                if strict:
                    raise
                return
            assert self._decoder is not None and self._decoder.image is not None
            yield float(self._t_us[i]) / 1e6, self._decoder.image
            i += 1
        if strict and self.damage is not None:
            raise RecordingError(str(self.damage))

    def __iter__(self) -> Iterator[tuple[float, Image]]:
        return self.frames()

    def verify(self) -> Optional[Damage]:
        """Check every record's CRC (reads the whole file, as a file without an index is
        read); returns the damage, if any."""
        if self._start:
            self._decoder, self._at, self.damage = None, -1, None
            self._scan()
        return self.damage

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def open_recording(path: Union[str, "os.PathLike[str]"], *, verify: bool = False) -> Recording:
    """Open a .ffrec file. A closed recording is read through its index (record CRCs are
    checked as records are read); one without an index, or with verify=True, is scanned
    and every CRC checked. Raises RecordingError for a file that is not a recording."""
    return Recording(path, verify=verify)
