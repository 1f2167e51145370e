"""The frame codec: RGBA images in, frame packets out, and back (PROTOCOL.md section 1).

encoder.py holds the policy (damage, which encoding, when a keyframe), decoder.py
rebuilds images, packet.py is the wire layout, png.py and deflate.py the PNG path; the
hot loops are the compiled kernels in fastfig/_encode.pyx.
"""
