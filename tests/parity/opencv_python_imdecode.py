"""opencv-python's `cv2.imdecode(buf, cv2.IMREAD_COLOR)` of each JPEG file named, written to
stdout: per file a line `WIDTH HEIGHT\n`, then the BGR bytes. The legacy decoded streamed frames
this way; the JPEG decoding test compares ours with it byte for byte.
"""
import sys

import cv2
import numpy as np

out = sys.stdout.buffer
for path in sys.argv[1:]:
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    out.write(f"{width} {height}\n".encode())
    out.write(np.ascontiguousarray(image).tobytes())
out.flush()
