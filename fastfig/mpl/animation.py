"""The timeline of a matplotlib FuncAnimation or ArtistAnimation on a served fastfig
canvas.

When the animation's timer first ticks on a served canvas (TimerAsyncio calls
``take_over``), the animation is handed to a Player: its own timer stops and the Player
draws frame i through the animation's draw path (``_draw_next_frame``, blitting as the
animation does) with the i-th frame datum: a FuncAnimation's i-th ``frames`` item, an
ArtistAnimation's i-th list of artists (shown, the previous frame's hidden, as
matplotlib does). With ``frames=`` an int or a sequence, or artists, every frame can be
drawn in any order; a generator is drawn forward with next(), and its length becomes
known when it runs out.

Seen frames are kept in a FrameCache. Showing a cached frame writes its pixels into the
Agg buffer and marks the frame loop damaged, so what frontends see and the canvas hold
never disagree, and the animation's next blit restores its background over the right
pixels. A view change (resize, toolbar, a click, a scroll, a key) makes the cached
images stale: they are dropped and the current frame is drawn again. So does a redraw
asked for by anything but the animation's own frame (``draw_idle`` from the user's code,
a widget, pyplot's interactive mode): the figure may look different now.

The animation's own timer stays the switch users know: once taken over, its stop() and
start() (Animation.pause() and resume(), event_source.stop()) pause and play the Player.
"""

from __future__ import annotations

import collections.abc
import contextlib
from typing import Any, Iterator, Optional

import numpy as np

from .frameloop import _union, display_box
from ..timeline.cache import DEFAULT_MAX_BYTES, Box, FrameCache
from ..timeline.player import MAX_SKIP_AHEAD, Player
from ..transport import protocol as P

#: Input events after which cached images may not show the figure as it is drawn now.
VIEW_EVENTS = frozenset({"resize", "button_release", "scroll", "key_press"})
VIEW_TOOLBAR = frozenset({"home", "back", "forward"})

_MISSING = object()


def animation_of(timer: Any) -> Any:
    """The FuncAnimation or ArtistAnimation whose frames timer steps, or None."""
    from matplotlib.animation import ArtistAnimation, FuncAnimation
    for func, _args, _kwargs in getattr(timer, "callbacks", ()):
        owner = getattr(func, "__self__", None)
        if isinstance(owner, (FuncAnimation, ArtistAnimation)) \
                and getattr(func, "__name__", "") == "_step":
            return owner
    return None


def take_over(canvas: Any, timer: Any) -> bool:
    """Called by a tick of timer on a served canvas: if it steps an animation that
    animation_of knows, stop it and let the canvas's timeline Player drive the
    animation instead (True)."""
    anim = animation_of(timer)
    if anim is None:
        return False
    player = canvas._timeline
    if player is not None and not player.closed and player.source.anim is not anim:
        return False   # the figure's first animation has the timeline; this one runs on
    timer.stop()
    if player is None or player.closed:
        source = AnimationSource(canvas, anim)
        canvas._timeline = source.player
        source.player.start(playing=True)
    timer.timeline = canvas._timeline.source   # its start and stop now play and pause
    return True


def timeline_event(canvas: Any, event: dict, sender: Optional[list[bytes]]) -> None:
    """Apply a (validated) timeline event; the sender is told why when it cannot be."""
    player = canvas._timeline
    stream = canvas._stream
    if player is None:
        if stream is not None:
            stream.reply(sender, P.ERROR, code=P.E_NO_TIMELINE,
                         message=f"figure {stream.id!r} has no timeline (no animation "
                                 "runs on it)")
        return
    reason = player.handle(event)
    if reason is not None and stream is not None:
        stream.reply(sender, P.ERROR, code=P.E_UNAVAILABLE, message=reason)


def known_frames(anim: Any) -> Optional[collections.abc.Sequence]:
    """The frame data of an animation made with ``frames=`` an int or a sequence (a
    container with a length), read from how matplotlib keeps it, or an ArtistAnimation's
    lists of artists; None for a generator (``frames`` None, a callable or an
    iterator)."""
    from matplotlib.animation import ArtistAnimation
    if isinstance(anim, ArtistAnimation):
        return list(anim._framedata)  # type: ignore[attr-defined]  # no public accessor
    gen = getattr(anim, "_iter_gen", None)
    if gen is None or getattr(gen, "__module__", None) != "matplotlib.animation":
        return None   # itertools.count (frames=None) or the user's generator function
    cells = [c.cell_contents for c in (gen.__closure__ or ())]
    for value in [*(gen.__defaults__ or ()), *cells]:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return range(int(value))
        if hasattr(value, "__len__") and iter(value) is not value:
            if isinstance(value, (collections.abc.Sequence, np.ndarray)):
                return value   # type: ignore[return-value]
            return list(value)
    return None


class AnimationSource:
    """A timeline Source over an animation on a served fastfig canvas; owns its
    Player (``.player``)."""

    def __init__(self, canvas: Any, anim: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        from . import runtime
        self.canvas = canvas
        self.anim = anim
        self.interval = max(float(getattr(anim, "_interval", 200)), 0.0) / 1000
        self._data = known_frames(anim)
        self.length: Optional[int] = None if self._data is None else len(self._data)
        self.cache = FrameCache(max_bytes)
        self.draws = 0               # frames drawn by the animation (not from the cache)
        self.restores = 0            # frames restored from the cache
        self._frames_iter: Any = None if self._data is not None else anim.frame_seq
        self._next = 0               # a generator's index of its next item
        self._artists_at: Optional[int] = None   # the frame the artists were drawn for
        self._showing: Optional[int] = None
        # Where the frame shown differs from the cache's base (None: unknown), and where
        # any frame drawn since the cache was cleared can differ from it: the union of
        # a blitting animation's boxes (None: anywhere, once a frame was drawn whole).
        self._box: Optional[Box] = None
        self._scan: Optional[Box] = None
        self._scan_whole = False
        self._serial = 0             # one more per show(): a capture of an older one is void
        self._timer_paused = False   # paused by the animation's timer, not by a viewer
        self._own = False            # in the animation's own draw: its redraws are frames
        self._redraw_due = False     # _redraw_current waits for the loop
        self.player = Player(self, self._publish, runtime.get().loop,
                             repeat=bool(getattr(anim, "_repeat", True)), ready=self._ready)
        stream = canvas._stream
        stream.on_event(self._on_event)
        stream.on_close(self.player.close)

    # -- Source ---------------------------------------------------------------------------

    def cached(self) -> Optional[tuple[int, int]]:
        if self._showing is None:
            return None
        # A frame just drawn is kept once it went out: until then (its state goes before
        # it), the run it extends, behind it whichever way it plays.
        i = self._showing
        return self.cache.run(i) or self.cache.run(i - 1) or self.cache.run(i + 1)

    def show(self, index: int) -> bool:
        frames = self.canvas._frames
        if frames is None:
            return False
        restored = self.cache.restore(index, self.canvas._image(), self._box)
        if restored is not None:
            self._box, changed = restored
            self.restores += 1
            self._serial += 1
            self._showing = index
            frames.damaged(changed)
            return True
        datum = self._datum(index)
        if datum is _MISSING:
            return False
        self._draw(index, datum)
        return True

    # -- the animation's own timer ------------------------------------------------------------

    def timer_stopped(self) -> None:
        """The animation's timer was stopped (Animation.pause(), event_source.stop(), a
        blitting animation around a resize): pause, to play again when it starts."""
        if self.player.playing and not self.player.closed:
            self._timer_paused = True
            self.player.pause()

    def timer_started(self) -> None:
        """The timer started again: play on if it was the timer that paused (a pause
        from a viewer's timeline bar stays until a viewer plays)."""
        if self._timer_paused and not self.player.closed:
            self._timer_paused = False
            self.player.play()

    # -- drawing ---------------------------------------------------------------------------

    def _datum(self, index: int) -> Any:
        if self._data is not None:
            return self._data[index] if 0 <= index < len(self._data) else _MISSING
        if index < self._next:
            if index != 0:
                return _MISSING          # a generator's frame no longer cached
            self._frames_iter = self.anim.new_frame_seq()   # from the start, as on repeat
            self._next = 0
        if index - self._next > MAX_SKIP_AHEAD:
            return _MISSING
        try:
            while self._next < index:    # frames skipped over are not drawn
                next(self._frames_iter)
                self._next += 1
            datum = next(self._frames_iter)
        except StopIteration:
            self.length = self._next     # the generator ran out: now its length is known
            return _MISSING
        self._next += 1
        return datum

    def _draw(self, index: int, datum: Any) -> None:
        anim = self.anim
        with self._owning():
            anim._draw_next_frame(datum, anim._blit)
        self._box = None
        blit_box = self._blit_box()
        if blit_box is None or self._scan_whole:
            self._scan, self._scan_whole = None, True
        else:
            self._scan = blit_box if self._scan is None else _union([self._scan, blit_box])
        self.draws += 1
        self._serial += 1
        self._showing = self._artists_at = index
        serial = self._serial
        self.canvas._frames.when_idle(lambda: self._capture(index, serial))

    def _capture(self, index: int, serial: int) -> None:
        """Frame index went out: keep its image, unless another frame was shown since."""
        if serial == self._serial and self.canvas._frames is not None:
            # The packet viewers were just sent holds this image: kept as it is when
            # it covers the frame (see FrameCache).
            stream = self.canvas._stream
            packet = stream.newest_packet() if stream is not None else None
            self._box = self.cache.put(index, self.canvas._image(), self._scan,
                                       playhead=index, packet=packet)
            if not self.player.playing:
                self.player.publish_state()   # the cached range grew (while playing,
                                              # the next frame's state carries it)

    def _blit_box(self) -> Optional[Box]:
        """Where a blitting animation's frame can differ from the one before: the boxes
        of the axes of the artists it draws (it restores and blits those only). None
        (anywhere) when the animation draws the whole figure."""
        anim = self.anim
        artists = anim._drawn_artists if anim._blit else None
        if not artists:
            return None
        height = self.canvas.get_renderer().height
        boxes = [display_box(ax.bbox, height) for ax in {a.axes for a in artists}
                 if ax is not None]
        if len(boxes) != len({a.axes for a in artists}):
            return None   # an artist outside any axes: the whole figure
        return _union(boxes)

    # -- the figure around it ------------------------------------------------------------------

    def _ready(self, callback: Any) -> None:
        frames = self.canvas._frames
        if frames is not None:
            frames.when_idle(callback)

    def _publish(self, state: dict) -> None:
        self.canvas.send_state(timeline=state)

    def _on_event(self, event: dict) -> None:
        etype = event["type"]
        if etype in VIEW_EVENTS or (etype == "toolbar" and event.get("name") in VIEW_TOOLBAR):
            self._stale(redraw=True)

    def figure_changed(self) -> None:
        """The canvas was asked to draw again (draw_idle). Unless the animation's own
        frame asked, something else changed the figure: the cached frames may show it
        as it was. A blitting animation's artists are drawn again over the new render
        (which leaves them out); a full one's current frame is in that render already."""
        if not self._own and not self.player.closed:
            self._stale(redraw=bool(self.anim._blit))

    def _stale(self, redraw: bool) -> None:
        self.cache.clear()
        self._box = self._scan = None
        self._scan_whole = False
        frames = self.canvas._frames
        if redraw and frames is not None and not self._redraw_due:
            self._redraw_due = True
            frames.when_idle(self._redraw_current)

    @contextlib.contextmanager
    def _owning(self) -> Iterator[None]:
        was, self._own = self._own, True
        try:
            yield
        finally:
            self._own = was

    def _redraw_current(self) -> None:
        self._redraw_due = False
        with self._owning():
            self._redraw_current_frame()

    def _redraw_current_frame(self) -> None:
        """After the figure was drawn again (a view change), draw the current frame
        through the animation so blitted artists are on the new background."""
        index = self._showing
        if index is None or self.player.closed:
            return
        if self._data is not None:
            self._draw(index, self._data[index])
        elif self._artists_at == index:
            anim = self.anim
            anim._post_draw(None, anim._blit)
        self.player.publish_state()
