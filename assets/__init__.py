"""tunegate Dagster code location: thin assets over pipeline/."""
