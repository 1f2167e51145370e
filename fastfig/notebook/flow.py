"""Flow control of one notebook widget: the session layer's credits, stretched over a
comm round trip, plus what a busy kernel needs.

The page returns one credit per packet it took (a few at a time). Up to WINDOW packets may be on their way
to it or waiting to be taken: a comm round trip in JupyterLab is tens of ms, and a view
that waited for the page's reply to each frame would see a third of the frames. The
figure's Consumer (transport/session.py) is credited as soon as a packet is handed to the
comm, so its demand means "the page has room": the figure renders while fewer than WINDOW
frames wait for the page and stops when the page stops taking them (a hidden view holds
its credit back). ``send`` refuses a packet while the page's window is full; the consumer
keeps it pending and, when the page makes room, sends what brings it to the newest image.

While a cell runs, ipykernel handles no comm message, so no credit comes back however
many frames the page took. A loop in the cell that calls ``flush_events()`` or
``plt.pause()`` (``busy_frame``) lends the page one credit per frame, at most BUSY_FPS a
second; the credits the page returns once the cell ends first repay the loan (``debt``),
so the window is its usual size afterwards.

Where the comm's messages are handled depends on the frontend: ipykernel 7 runs a comm
whose page sends over a kernel subshell (JupyterLab 4.6's "comms over subshells") on that
subshell's thread, at any time, also while a cell runs. The flow, the Outbox and the
figure are one thread's (the kernel's main loop's): ``PageMessages`` takes the page's
messages on whatever thread they arrive and hands them to that loop, and a running cell
takes them at its next ``flush_events``. (Credit handled on the subshell's thread while
the loop's thread was in the middle of sending a packet made the Outbox send that packet
twice: the page saw "delta N does not follow frame N" and asked for a keyframe.)
"""

import collections
import threading
import time

#: Frames on their way to the page or waiting there to be taken: a display frame's worth
#: at 60 frames/s for each 17 ms of round trip (tens of ms in JupyterLab, more under
#: load) plus the few the page holds back to return their credit in one message.
WINDOW = 16
#: The frame rate a figure shown in the notebook renders at, at most, unless it names its
#: own (fps=): a page shows at most one frame per display refresh.
DISPLAY_FPS = 60
#: Frames per second sent while the kernel is busy and credit cannot come back.
BUSY_FPS = 30
#: While busy before the page joined: a keyframe this often (seconds).
BLIND_KEYFRAME = 0.5
#: The Consumer's own window: its credits come back as soon as a packet is on the comm.
CONSUMER_CREDIT = 2


class PageMessages:
    """The page's messages, handled in order on the loop's thread: handle(msg) is called
    there for each message given to ``receive`` on any thread (at once when that is the
    loop's thread and nothing is waiting). thread: the loop's thread id."""

    def __init__(self, handle, loop, thread):
        self.handle = handle
        self.loop = loop
        self.thread = thread
        self.waiting = collections.deque()
        self.handed_over = 0                   # messages that came on another thread

    def receive(self, msg):
        if threading.get_ident() == self.thread and not self.waiting:
            self.handle(msg)
            return
        self.waiting.append(msg)
        self.handed_over += 1
        try:
            self.loop.call_soon_threadsafe(self.take)
        except RuntimeError:
            pass   # the loop is closed: the kernel is exiting

    def take(self):
        """Handle the messages waiting (on the loop's thread: its callback, or a running
        cell's flush_events)."""
        if threading.get_ident() != self.thread:
            return
        while self.waiting:
            self.handle(self.waiting.popleft())


class ViewFlow:
    """Credits between one widget (every page showing it) and its figure's stream.
    send(packet) puts a packet on the comm; loop is the kernel's asyncio loop."""

    def __init__(self, stream, send, loop, window=WINDOW, busy_fps=BUSY_FPS):
        self.stream = stream
        self._send = send
        self.loop = loop
        self.window = window
        self.busy_period = 1.0 / busy_fps
        self.consumer = None
        self.leader = None          # the page instance whose credits count
        self.debt = 0               # credits lent while the kernel was busy
        self.in_flight = 0          # packets sent that the page has not credited
        self.owed = 0               # credits the consumer is owed (packets on the comm)
        self.sent = 0
        self.busy_sent = 0
        self._settle_handle = None
        self._last_busy = 0.0
        self._last_blind_keyframe = 0.0
        self.start()

    def start(self):
        """(Re)start from nothing: the next packet is a keyframe of the newest image."""
        if self.consumer is not None:
            self.consumer.close()
        self.debt = self.in_flight = self.owed = 0
        self.consumer = None
        if not self.stream.closed:
            self.consumer = self.stream.attach(self._on_packet, credit=CONSUMER_CREDIT)

    def _on_packet(self, packet):
        if self.in_flight >= self.window + self.debt:
            return False     # the page's window is full: the consumer keeps it pending
        self.in_flight += 1
        self.sent += 1
        self._send(packet)
        self.owed += 1
        if self._settle_handle is None:
            self._settle_handle = self.loop.call_soon(self._settle)
        return True

    def _settle(self):
        self._settle_handle = None
        owed, self.owed = self.owed, 0
        if owed and self.consumer is not None:
            self.consumer.grant(owed)

    # -- the page ---------------------------------------------------------------------------

    def join(self, instance):
        """A page (re)started showing the widget: it holds nothing, and frames sent before
        it listened are lost with their credit."""
        self.leader = instance
        self.start()

    def leave(self, instance):
        """A page stopped showing the widget (its notebook closed): if it was the one
        speaking for the pages, stop sending until a page joins again."""
        if instance == self.leader:
            self.leader = None
            if self.consumer is not None:
                self.consumer.close()
                self.consumer = None

    def credit(self, n, instance=None, seq=None, epoch=None):
        # Every page receives every frame; the one that joined last speaks for them (a
        # page that falls behind sees a gap and asks for a resync).
        if instance is not None and self.leader is not None and instance != self.leader:
            return
        self.in_flight = max(0, self.in_flight - n)
        self.debt -= min(self.debt, n)
        if self.consumer is not None:
            self.consumer.grant(0, seq=seq, epoch=epoch)   # room again: send what is pending

    def resync(self):
        if self.consumer is not None:
            self.consumer.resync()

    # -- a running cell -------------------------------------------------------------------------

    def busy_frame(self, publish):
        """In a running cell: publish() (render and publish what is pending) when the page
        has room, or when the budget allows lending it some; else leave the change
        pending (a later call renders it), so the cell's loop is not slowed by frames
        nobody would see. True if publish() was called."""
        self._settle()    # the loop that would settle runs only after the cell
        now = time.monotonic()
        if self.leader is None and self.consumer is not None and \
                now - self._last_blind_keyframe >= BLIND_KEYFRAME:
            # Shown in this very cell: the page's join waits for the cell to end, and the
            # frames sent before its view listened are lost. Keyframes now and then give
            # it a start to apply the deltas to.
            self._last_blind_keyframe = now
            self.consumer.resync()
        if self.in_flight >= self.window + self.debt:
            if now - self._last_busy < self.busy_period:
                return False
            self._last_busy = now
            self.debt += 1
        before = self.sent
        publish()
        self._settle()
        self.busy_sent += self.sent - before
        return True

    def close(self):
        if self._settle_handle is not None:
            self._settle_handle.cancel()
            self._settle_handle = None
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
