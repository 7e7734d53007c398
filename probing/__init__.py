"""probing: see README."""
