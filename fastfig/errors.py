"""The exceptions fastfig raises for input it cannot use."""


class FrameError(ValueError):
    """A frame packet was rejected: malformed, of an unknown major version, or not
    applicable to the decoder's current image. The decoder's image is left unchanged."""


class FrameGap(FrameError):
    """A well-formed delta that does not follow the decoder's current image (a sequence
    number was skipped, the epoch changed, or no keyframe was seen yet). The remedy is a
    keyframe: ask the server for one."""

    def __init__(self, message, *, expected_seq=None, seq=None):
        super().__init__(message)
        self.expected_seq = expected_seq
        self.seq = seq
