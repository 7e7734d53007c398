"""realign: see README."""
