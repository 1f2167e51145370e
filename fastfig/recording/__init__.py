"""Recordings of a figure's frame stream (.ffrec, RECORDING.md): write one from a
client, read it back with its index, replay it to any frontend as if live."""
