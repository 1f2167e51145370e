"""The export benchmark's animation (bench_export.py): 120 frames of one moving sine line
on a 1920x1080 figure, blitted, 30 frames/s. A plain script, as `fastfig export` takes."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation

fig, ax = plt.subplots(figsize=(19.2, 10.8), dpi=100)
x = np.linspace(0, 4 * np.pi, 1000)
(line,) = ax.plot(x, np.sin(x))
ax.set_ylim(-1.2, 1.2)
ax.grid(True)


def update(i):
    line.set_ydata(np.sin(x + 0.1 * i))
    return [line]


anim = FuncAnimation(fig, update, frames=120, interval=1000 / 30, blit=True)

if __name__ == "__main__":
    plt.show()
