"""matplotlib's side of fastfig: the backend (canvas, manager, timers), the frame loop that
turns changes into frames, input events and the toolbar, and the process-wide runtime.
"""
