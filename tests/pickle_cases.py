"""A pickle that would run code: loading it with full pickle creates a marker file, so a test can show that a load
path never runs what a file holds."""

from __future__ import annotations


class Marker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))
