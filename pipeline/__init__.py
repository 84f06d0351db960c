"""tunegate core: plain-Python pipeline stages, no Dagster imports."""
