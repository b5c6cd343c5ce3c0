"""Installable bundles built from this install of edgelens (``edgelens package``)."""
