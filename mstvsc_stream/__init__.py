"""MSTVSC: packet-loss-resistant semantic video streaming over UDP."""

__version__ = "0.1.0"
