"""`llink serve`: an OpenAI-compatible HTTP server for an LLINK artifact (see app.py)."""

from .app import Limits, create_app

__all__ = ["Limits", "create_app"]
