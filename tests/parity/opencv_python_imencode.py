"""Every `STEP`-th frame of VIDEO, read by opencv-python and encoded with `cv2.imencode('.jpg',
frame, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])` (as a piste laptop running OpenCV encodes), written
to OUT_DIR/frame_NNNNN.jpg. Usage: python opencv_python_imencode.py VIDEO OUT_DIR STEP QUALITY
"""
import os
import sys

import cv2

video, out_dir, step, quality = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
capture = cv2.VideoCapture(video)
index = 0
while True:
    ok, frame = capture.read()
    if not ok:
        break
    if index % step == 0:
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        jpeg.tofile(os.path.join(out_dir, f"frame_{index:05d}.jpg"))
    index += 1
