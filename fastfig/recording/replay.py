"""``fastfig replay``: serve a recording as a live figure, with the timeline controls.

A RecordingSource is the timeline's Source (fastfig/timeline/player.py) over a
recording: showing frame i publishes its image (decoded from the nearest checkpoint, or
from the frame before when playing on) to a FigureStream, which encodes it for every
frontend as it would a live figure. The Player paces the frames by their recorded times
(the source's interval is the gap to the next frame) times the speed, shows a frame only
when a frontend wants one, and takes play, pause, step, seek, reverse and speed from any
frontend's ``timeline`` events.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Callable, Optional, Union


from ..timeline.player import Player
from ..transport import protocol as P
from ..transport.server import Server
from .format import Recording, RecordingError, open_recording

#: The recorded state fields a replay shows; the rest (cursor, rubberband, navigation
#: mode, the recorded figure's own timeline) belonged to the recorded session's input.
REPLAYED_STATE = ("title", "message")
#: Seconds per frame of a recording of one frame (nothing to pace).
SINGLE_FRAME_INTERVAL = 0.1


class RecordingSource:
    """The Source protocol over a Recording: every frame is at hand (seeking through the
    index), so ``cached`` is the whole recording."""

    def __init__(self, recording: Recording, stream: Any) -> None:
        if not len(recording):
            raise RecordingError(f"{recording.path} has no frame to replay"
                                 + (f" ({recording.damage})" if recording.damage else ""))
        self.recording = recording
        self.stream = stream
        self.length: Optional[int] = len(recording)
        self._times = recording.times
        self._index = 0
        self._state: dict = {}
        self.failed: Optional[str] = None     # why the last show() failed

    @property
    def interval(self) -> float:
        """Seconds to the next frame at speed 1: the recorded gap, so a replay keeps the
        recording's rhythm."""
        i = self._index
        if len(self._times) < 2:
            return SINGLE_FRAME_INTERVAL
        if i + 1 >= len(self._times):
            i = len(self._times) - 2      # past the last frame: the last gap
        return float(min(max(self._times[i + 1] - self._times[i], 0.0),
                         P.MAX_INTERVAL_MS / 1000))

    def show(self, index: int) -> bool:
        if not 0 <= index < len(self.recording):
            return False
        try:
            image = self.recording.view(index)
        except RecordingError as e:        # damage found while reading: the frames
            self.failed = str(e)           # before it still play
            return False
        self._index = index
        self._show_state(index)
        # Encoded at once (a size change, as the recorded figure's, starts a new epoch
        # with a keyframe, as it did live).
        self.stream.publish(image)
        return True

    def _show_state(self, index: int) -> None:
        wanted: dict = {}
        for frame, _t, fields in self.recording.states:
            if frame > index:
                break
            wanted.update((k, v) for k, v in fields.items() if k in REPLAYED_STATE)
        changed = {k: v for k, v in wanted.items() if self._state.get(k) != v}
        if changed:
            self._state.update(changed)
            try:
                self.stream.set_state(**changed)
            except Exception:               # a recorded value this protocol refuses
                pass

    def cached(self) -> Optional[tuple[int, int]]:
        return (0, len(self.recording) - 1)


def demand_gate(stream: Any) -> Callable[[Callable[[], None]], None]:
    """The Player's ready(): call back at once while a frontend wants a frame, else when
    one does (nobody watching: no frame decoded or encoded)."""
    waiting: list[Callable[[], None]] = []

    def on_demand() -> None:
        while waiting and stream.demand:
            waiting.pop(0)()

    stream.on_demand(on_demand)

    def ready(callback: Callable[[], None]) -> None:
        if stream.demand:
            callback()
        else:
            waiting.append(callback)
    return ready


class Replay:
    """Serve a recording as a live figure on a Server of its own (in a thread), with the
    browser viewer unless viewer=False. speed: the playback speed factor; loop: start
    over at the end; play: start playing (else paused at the first frame); verify: check
    every record's CRC first (``recording.damage`` then tells). ``address``:
    the server's control endpoint; ``url``: the viewer's page; ``close()`` stops it."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, speed: float = 1.0,
                 loop: bool = False, play: bool = True, address: Optional[str] = None,
                 port: Optional[int] = None, token: Optional[str] = None,
                 viewer: bool = True, verify: bool = False) -> None:
        if not P.MIN_SPEED <= speed <= P.MAX_SPEED:
            raise ValueError(f"speed must be {P.MIN_SPEED}..{P.MAX_SPEED}, not {speed}")
        self.recording = open_recording(path, verify=verify)
        self.speed, self.loop, self.play = speed, loop, play
        self.server: Any = None
        self.bridge: Any = None
        self.player: Optional[Player] = None
        self.finished = threading.Event()     # played to the end (not looping)
        try:
            if not len(self.recording):
                RecordingSource(self.recording, None)    # raises, naming the damage
            self.server = Server.run_in_thread(address)
            self.stream = self.server.call(self._start)
            if viewer:
                from ..web.bridge import Bridge
                self.bridge = Bridge(self.server, port=port or 0, token=token,
                                     title=f"fastfig replay: {os.path.basename(self.recording.path)}"
                                     ).start_thread()
        except BaseException:
            self.close()
            raise

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def url(self) -> Optional[str]:
        return None if self.bridge is None else self.bridge.url

    def _start(self) -> Any:
        """On the server's loop: the figure, its source and player."""
        meta, rec = self.recording.meta, self.recording
        first = rec.view(0)
        figure = str(meta.get("figure") or "1")
        try:
            figure = P.check_figure_id(figure)
        except Exception:
            figure = "1"
        stream = self.server.server.add_figure(
            figure, first.shape[1], first.shape[0],
            title=str(meta.get("title") or f"Replay of {os.path.basename(rec.path)}"))
        source = RecordingSource(rec, stream)

        def publish(state: dict) -> None:
            stream.set_state(timeline=state)
            # The Player stops at the last frame (or at damage) when not repeating.
            if not state["playing"] and player.shown and not self.loop and (
                    state["index"] == len(rec) - 1 or source.failed):
                self.finished.set()
        player = Player(source, publish, asyncio.get_running_loop(), repeat=self.loop,
                        ready=demand_gate(stream))
        player.set_speed(self.speed)

        def on_event(event: dict) -> None:
            if event.get("type") == "timeline":
                reason = player.handle(event)
                if reason is not None:
                    stream.reply(stream.sender, P.ERROR, code=P.E_UNAVAILABLE,
                                 message=reason)
        stream.on_event(on_event)
        self.player = player
        player.start(playing=self.play)
        return stream

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        if self.server is not None:
            if self.player is not None:
                self.server.call(self.player.close)
            self.server.close()
            self.server = None
        self.recording.close()

    def __enter__(self) -> "Replay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
