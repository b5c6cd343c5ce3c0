"""edgelens: edge visual search (frame → vector → message → match → screen)."""

import os

__version__ = "0.1.0"

# Decoded images larger than this are refused. OpenCV checks the limit from an image's
# header, before it allocates the pixels (a 100 KB PNG can decode to 300 MB: a
# decompression bomb), but reads it only once, when cv2 loads: so it is set here, before
# any edgelens module imports cv2.
MAX_IMAGE_PIXELS = 64_000_000
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
