"""The Player: the policy of a timeline (play, pause, step, seek, reverse, speed, repeat)
over a Source of frames, and the ``timeline`` state it publishes (PROTOCOL.md section 2,
"Timeline").

It keeps its own timer on the asyncio loop at ``interval / speed``, at a fixed rate like
the backend's animation timers (a late tick does not shift the ones after it, and a
loop that fell behind does not burst to catch up). Before it shows a frame it waits for
``ready``: for a figure on the fastfig backend that is the frame loop's ``when_idle``, so
a frame is made only once the previous one went out to a consumer that wanted it; when
nobody watches, nothing goes out and nothing more is rendered.

Everything here runs on the loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional, Protocol, Union

from ..transport import protocol as P

log = logging.getLogger("fastfig.timeline")

#: A generator's frames beyond the newest one drawn that a seek or step may draw past
#: (their data is taken without drawing them): a seek to frame 2**31 of an endless
#: generator must not hold the loop.
MAX_SKIP_AHEAD = 10_000


class Source(Protocol):
    """Frames a Player shows, by index. length and interval may be plain attributes."""

    @property
    def length(self) -> Optional[int]:
        """Frames known (None: a generator not yet exhausted)."""
        ...

    @property
    def interval(self) -> float:
        """Seconds per frame at speed 1."""
        ...

    def show(self, index: int) -> bool:
        """Make frame ``index`` the figure's current image and publish it; False if it
        does not exist (beyond a generator's end, or a generator's frame no longer
        kept)."""
        ...

    def cached(self) -> Optional[tuple[int, int]]:
        """The run of frames around the current one that show() restores at once, as
        (first, last), or None."""
        ...


Ready = Callable[[Callable[[], None]], None]
StatePublisher = Callable[[dict], None]


def _now(callback: Callable[[], None]) -> None:
    callback()


class Player:
    """Plays a Source: ``play``, ``pause``, ``step``, ``seek``, ``set_speed``,
    ``set_direction``, or ``handle(event)`` with a validated timeline event.

    publish: a FigureStream (its ``timeline`` state is set) or a callable taking the
    timeline state dict. loop: the asyncio loop the timer runs on (anything with
    ``time()`` and ``call_at()``). repeat: wrap around at either end, as the animation's
    ``repeat`` says. ready(callback): calls callback once the previous frame went out
    (default: at once).
    """

    def __init__(self, source: Source, publish: Union[Any, StatePublisher],
                 loop: Any = None, *, repeat: bool = True,
                 ready: Optional[Ready] = None) -> None:
        self.source = source
        if hasattr(publish, "set_state"):
            stream = publish
            self._publish: StatePublisher = lambda state: stream.set_state(timeline=state)
        else:
            self._publish = publish
        self.loop = loop if loop is not None else asyncio.get_event_loop()
        self.repeat = repeat
        self._ready: Ready = ready or _now
        self.index = 0
        self.shown = False           # a frame has been shown
        self.playing = False
        self.direction = 1
        self.speed = 1.0
        self.renders = 0             # frames shown (cached or drawn)
        self._handle: Optional[asyncio.TimerHandle] = None
        self._due: Optional[float] = None
        self._generation = 0         # bumped to drop ticks of a cancelled timer
        self._waiting = False        # a tick waits for ready()
        self._published: Optional[dict] = None
        self.closed = False

    # -- state --------------------------------------------------------------------------

    @property
    def period(self) -> float:
        """Seconds between frames while playing."""
        return max(self.source.interval, 0.0) / self.speed

    def state(self) -> dict:
        cached = self.source.cached()
        return {"index": self.index, "length": self.source.length,
                "playing": self.playing, "direction": self.direction,
                "speed": self.speed,
                "interval": min(self.source.interval * 1000, P.MAX_INTERVAL_MS),
                "cached": None if cached is None else [cached[0], cached[1]]}

    def publish_state(self) -> None:
        """Publish the timeline state if it changed since it was last published."""
        if self.closed:
            return
        state = self.state()
        if state != self._published:
            self._published = state
            self._publish(dict(state))

    # -- actions ------------------------------------------------------------------------

    def start(self, playing: bool = True, index: int = 0) -> None:
        """Show frame index now, then play on from it if playing."""
        self.playing = playing
        self._go(index, keep_playing=True)

    def play(self) -> None:
        if self.playing:
            return
        self.playing = True
        last = self._last()
        at_end = (self.index == last) if self.direction > 0 else (self.index == 0)
        if at_end and not self.repeat and last is not None:
            # Play at the end starts over, as a video player does.
            self._go(0 if self.direction > 0 else last, keep_playing=True)
            return
        self._arm(first=True)
        self.publish_state()

    def pause(self) -> None:
        if not self.playing:
            return
        self.playing = False
        self._cancel()
        self.publish_state()

    def step(self, delta: int) -> bool:
        """Pause and move delta frames (wrapping when repeating and the length is
        known, else stopping at the ends). False if that frame is not available."""
        self.playing = False
        self._cancel()
        target = self._wrap(self.index + delta)
        if target is None:
            self.publish_state()
            return False
        return self._go(target)

    def seek(self, index: int) -> bool:
        """Show frame index (the last one when beyond a known length), playing on if
        playing. False if that frame is not available."""
        last = self._last()
        if last is not None:
            index = min(index, last)
        elif self.shown and index > self.index + MAX_SKIP_AHEAD:
            return False
        return self._go(index, keep_playing=True)

    def set_speed(self, speed: float) -> None:
        speed = float(min(max(speed, P.MIN_SPEED), P.MAX_SPEED))
        if speed != self.speed:
            self.speed = speed
            if self.playing and not self._waiting:
                self._arm(first=True)
            self.publish_state()

    def set_direction(self, direction: int) -> None:
        direction = 1 if direction >= 0 else -1
        if direction != self.direction:
            self.direction = direction
            self.publish_state()

    def handle(self, event: dict) -> Optional[str]:
        """Apply a timeline event (validated by protocol.check_event); returns None, or
        why the frame it asks for cannot be shown."""
        action = event["action"]
        ok = True
        if action == "play":
            self.play()
        elif action == "pause":
            self.pause()
        elif action == "step":
            ok = self.step(event["delta"])
        elif action == "seek":
            ok = self.seek(event["index"])
        elif action == "speed":
            self.set_speed(event["speed"])
        elif action == "direction":
            self.set_direction(event["direction"])
        if ok:
            return None
        asked = self.index + event["delta"] if action == "step" else event.get("index")
        return f"frame {asked} is not available" + (
            "" if self.source.length is not None else
            " (the frames come from a generator: only frames still cached or the "
            "next ones can be shown)")

    def close(self) -> None:
        self.closed = True
        self._cancel()

    # -- showing ---------------------------------------------------------------------------

    def _last(self) -> Optional[int]:
        length = self.source.length
        return None if length is None else max(length - 1, 0)

    def _wrap(self, index: int) -> Optional[int]:
        """index within bounds: wrapped when repeating over a known length, else clamped
        at 0 and at a known end; None when a generator's end is not known and index
        lies too far past the newest frame."""
        last = self._last()
        if last is not None:
            if self.repeat:
                return index % (last + 1)
            return min(max(index, 0), last)
        if index < 0:
            return 0   # no known end to wrap to
        if index > self.index + MAX_SKIP_AHEAD:
            return None
        return index

    def _go(self, index: int, keep_playing: bool = False) -> bool:
        """Show index now (paused) or, when keep_playing, then play on from it."""
        self._cancel()
        ok = self._show(index)
        if self.playing and keep_playing:
            self._arm(first=True)
        self.publish_state()
        return ok

    def _show(self, index: int) -> bool:
        try:
            ok = self.source.show(index)
        except Exception:
            log.exception("showing frame %d failed", index)
            ok = False
        if ok:
            self.index = index
            self.shown = True
            self.renders += 1
        return ok

    # -- the timer --------------------------------------------------------------------------

    def _cancel(self) -> None:
        self._generation += 1
        self._waiting = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, first: bool = False) -> None:
        if self.closed:
            return
        self._cancel()
        generation = self._generation
        now = self.loop.time()
        if first or self._due is None:
            self._due = now + self.period
        else:
            self._due = max(self._due + self.period, now)
        self._handle = self.loop.call_at(self._due, self._tick, generation)

    def _tick(self, generation: int) -> None:
        self._handle = None
        if generation != self._generation or not self.playing:
            return
        self._waiting = True
        self._ready(lambda: self._advance(generation))

    def _advance(self, generation: int) -> None:
        if generation != self._generation or not self.playing or self.closed:
            return
        self._waiting = False
        target = self.index + self.direction
        last = self._last()
        ok = False
        if target < 0 or (last is not None and target > last):
            ok = self._at_end()
        else:
            ok = self._show(target)
            if not ok and self.source.length is not None and self.direction > 0:
                ok = self._at_end()   # a generator just ran out: its length is known now
        if not ok:
            self.playing = False
        if self.playing:
            self._arm()
        self.publish_state()

    def _at_end(self) -> bool:
        """Past an end while playing: wrap when repeating, else stop there."""
        if not self.repeat:
            return False
        last = self._last()
        if self.direction > 0:
            return self._show(0)
        return last is not None and self._show(last)
