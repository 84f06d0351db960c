"""The model half as assets (filled in as the stages land)."""
sensors: list = []
