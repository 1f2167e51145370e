"""The exceptions fastfig raises. Catch ``FastfigError`` for all of them; each also
derives from the built-in exception it refines (ValueError for bad input, RuntimeError
for a peer's or a resource's failure), so code written against those keeps working."""

from __future__ import annotations

from typing import Optional, Sequence


class FastfigError(Exception):
    """Base of every exception fastfig raises on purpose."""


class FrameError(FastfigError, ValueError):
    """A frame packet was rejected: malformed, of an unknown major version, or not
    applicable to the decoder's current image. The decoder's image is left unchanged."""


class FrameGap(FrameError):
    """A well-formed delta that does not follow the decoder's current image (a sequence
    number was skipped, the epoch changed, or no keyframe was seen yet). The remedy is a
    keyframe: a consumer sends ``resync``."""

    def __init__(self, message: str, *, expected_seq: Optional[int] = None,
                 seq: Optional[int] = None) -> None:
        super().__init__(message)
        self.expected_seq = expected_seq
        self.seq = seq


class ProtocolError(FastfigError, ValueError):
    """A message that breaks the transport protocol (PROTOCOL.md section 2). ``code`` is
    the error code a server sends back for it."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code


class ServerError(FastfigError, RuntimeError):
    """The server answered with an error, or cannot give what was asked (``code`` as in
    PROTOCOL.md section 2, e.g. "unknown_figure")."""

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code


class FigureClosed(FastfigError, RuntimeError):
    """The figure was closed: nothing more can be published to it."""


class CloseError(FastfigError, RuntimeError):
    """Closing (a Server, a Client) did not go cleanly; everything that could be closed
    was. ``errors`` holds what failed, in order."""

    def __init__(self, what: str, errors: Sequence[BaseException]) -> None:
        super().__init__(f"closing {what}: " + "; ".join(
            f"{type(e).__name__}: {e}" for e in errors))
        self.errors = list(errors)
