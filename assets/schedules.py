"""The nightly dataset refresh and the jobs it runs."""

from dagster import AssetSelection, ScheduleDefinition, define_asset_job

DATA_ASSETS = AssetSelection.groups("data")

refresh_dataset_job = define_asset_job(
    "refresh_dataset", selection=DATA_ASSETS,
    description="Landing files -> a new (or the same) dataset version, with every check.")

full_pipeline_job = define_asset_job(
    "full_pipeline", selection=AssetSelection.all(),
    description="The whole chain: data, fine-tuning, holdout evaluation, decision report.")

nightly_refresh_schedule = ScheduleDefinition(
    name="nightly_dataset_refresh", job=refresh_dataset_job, cron_schedule="0 2 * * *",
    execution_timezone="UTC", description="Refresh the dataset from landing every night at 02:00 UTC.")
