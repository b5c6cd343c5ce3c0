"""vector → message: the one wire format, topic names and Redis keys shared by every part."""
