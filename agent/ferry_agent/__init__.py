"""Ferry on-premises agent: directory and device work close to the systems it touches."""

__version__ = "0.1.0"
