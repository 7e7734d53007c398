"""analysis: see README."""
