"""The nightly dataset refresh."""
import dagster as dg

from assets.jobs import refresh_dataset_job

nightly_refresh_schedule = dg.ScheduleDefinition(
    name="nightly_dataset_refresh", job=refresh_dataset_job, cron_schedule="0 2 * * *",
    execution_timezone="UTC", description="Refresh the dataset from landing every night at 02:00 UTC.")
