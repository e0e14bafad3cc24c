"""llink: languages as modalities for small instruction-tuned decoders."""

__version__ = "0.1.0"
