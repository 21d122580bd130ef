"""Dataset readers, validation and splits."""
