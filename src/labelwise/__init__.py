"""Labelwise: label only what your model is unsure about.

The library is import-light on purpose: importing :mod:`labelwise` reads no configuration, opens
no files and imports neither torch nor ultralytics. Heavy adapters load on first use.
"""

__version__ = "0.1.0"
