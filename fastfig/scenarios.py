"""The reference scenarios (line1, line4, heavy) as live matplotlib figures, shared by
the tests, the benchmarks and the demo.

Each scenario draws on a figure of its own (an Agg-backed ``Figure``) or on one it is
given (a pyplot figure, for the demo and the browser benchmark); ``step(i)`` moves it to
frame i and returns the artists that changed (what a blitting animation redraws),
``render(i)`` draws frame i and returns the canvas's RGBA buffer as an (H, W, 4) uint8
array without copying (valid until the next draw), ``animate(interval_ms)`` runs it as a
FuncAnimation, and ``live(plt, name, ...)`` makes a pyplot figure of it, animated.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}


class Scenario:
    name = "?"

    def __init__(self, width=640, height=480, dpi=100, figure=None):
        self.width, self.height, self.dpi = width, height, dpi
        if figure is None:
            figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
            FigureCanvasAgg(figure)
        self.fig = figure
        self.canvas = figure.canvas
        self.animated = self._build()

    def _build(self):
        raise NotImplementedError

    def step(self, i):
        raise NotImplementedError

    def render(self, i):
        self.step(i)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())

    def frames(self, n, start=0):
        """n consecutive rendered frames, each its own copy."""
        return [self.render(start + i).copy() for i in range(n)]

    def animate(self, interval_ms, blit=True):
        """The scenario as a FuncAnimation of its figure, frame after frame for ever
        (keep it referenced, or matplotlib stops it)."""
        from matplotlib.animation import FuncAnimation
        return FuncAnimation(self.fig, self.step, interval=interval_ms, blit=blit,
                             cache_frame_data=False, save_count=0)

    def __repr__(self):
        return f"{self.name}@{self.width}x{self.height}"


class Lines(Scenario):
    """2x2 subplots, each a 1000-point sine over 0..4*pi with a grid and ylim (-1.2, 1.2);
    ``moving`` of the four lines shift their phase by 0.1 each frame."""

    moving = 1

    def _build(self):
        self.x = np.linspace(0, 4 * np.pi, 1000)
        self.lines = []
        for ax in self.fig.subplots(2, 2).flat:
            (line,) = ax.plot(self.x, np.sin(self.x))
            ax.grid(True)
            ax.set_ylim(-1.2, 1.2)
            self.lines.append(line)
        return self.lines[:self.moving]

    def step(self, i):
        for line in self.lines[:self.moving]:
            line.set_ydata(np.sin(self.x + 0.1 * i))
        return self.lines[:self.moving]


class Line1(Lines):
    name = "line1"
    moving = 1


class Line4(Lines):
    name = "line4"
    moving = 4


class Heavy(Scenario):
    """Left an imshow of a 512x512 random field with a colorbar (8 fields cycled), right a
    10,000-point coloured scatter (s=4) jittered each frame."""

    name = "heavy"

    def __init__(self, width=640, height=480, dpi=100, figure=None, points=10_000):
        self.n_points = points
        super().__init__(width, height, dpi, figure)

    def _build(self):
        rng = np.random.default_rng(1234)
        n = self.n_points
        self.fields = [rng.random((512, 512)) for _ in range(8)]
        self.points = rng.random((n, 2))
        self.jitter = rng.normal(scale=0.004, size=(16, n, 2))
        ax_img, ax_sc = self.fig.subplots(1, 2)
        self.image = ax_img.imshow(self.fields[0], vmin=0, vmax=1)
        self.fig.colorbar(self.image, ax=ax_img)
        self.scatter = ax_sc.scatter(self.points[:, 0], self.points[:, 1], s=4,
                                     c=self.points[:, 0] + self.points[:, 1])
        ax_sc.set_xlim(-0.05, 1.05)
        ax_sc.set_ylim(-0.05, 1.05)
        return [self.image, self.scatter]

    def step(self, i):
        self.image.set_data(self.fields[i % len(self.fields)])
        self.scatter.set_offsets(self.points + self.jitter[i % len(self.jitter)])
        return [self.image, self.scatter]


SCENARIOS = {cls.name: cls for cls in (Line1, Line4, Heavy)}


def make(name, size="640x480", **options):
    """A scenario by name ("line1", "line4", "heavy") and size ("1920x1080" or (w, h));
    options as the scenario's class takes them (heavy: points)."""
    width, height = SIZES[size] if isinstance(size, str) else size
    return SCENARIOS[name](width, height, **options)


def live(plt, name, width, height, *, interval_ms, blit=True, title=None, dpi=100,
         **options):
    """A pyplot figure (titled title) showing scenario name, animated every interval_ms:
    (figure, animation); keep the animation referenced."""
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, num=title)
    scenario = SCENARIOS[name](width, height, dpi, figure=fig, **options)
    return fig, scenario.animate(interval_ms, blit=blit)
