"""The timeline of an animation: play, pause, step, reverse, speed and seek, driven from
any frontend over the protocol (a ``timeline`` event), with the position carried back in
the figure's ``timeline`` state. The Player here is the policy; a source gives it frames
(a matplotlib FuncAnimation or ArtistAnimation in fastfig/mpl/animation.py, a recording in
fastfig/recording)."""
