"""Quality as users feel it: top-1/top-5, recall@k and mAP on real and camera-like views."""
