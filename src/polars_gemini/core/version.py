"""The library's version, written into every checkpoint manifest."""

__version__ = "0.1.0"
