"""Training recipes: one class per mode (setup / train / save)."""
