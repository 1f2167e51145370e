"""Recordings of a figure's frame stream (.ffrec, RECORDING.md): write one from a
client, read it back with its index, replay it to any frontend as if live.

``Client.record(path)`` records; ``open_recording(path)`` reads; ``replay.Replay(path)``
serves a recording as a live figure (``fastfig replay``)."""

from .format import Damage, Recording, RecordingError, open_recording
from .recorder import Recorder
from .writer import RecordingWriter

__all__ = ["Damage", "Recorder", "Recording", "RecordingError", "RecordingWriter",
           "open_recording"]
