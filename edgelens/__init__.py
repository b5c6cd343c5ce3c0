"""edgelens: edge visual search (frame → vector → message → match → screen)."""

__version__ = "0.1.0"
