"""Ferry: moves identities and devices between directories."""

__version__ = "0.1.0"
