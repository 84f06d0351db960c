"""The tunegate code location: assets, checks, jobs, the nightly schedule and the landing sensor.

Runs use the in-process executor: every step of a multi-process run pays the heavy imports again
(Presidio, spaCy, GX), which costs more than the parallelism gains on a chain this linear.
"""

from dagster import Definitions, in_process_executor, load_asset_checks_from_modules, load_assets_from_modules

from assets import checks, data_assets, model_assets, sensors
from assets.resources import TunegateConfigResource
from assets.schedules import full_pipeline_job, nightly_refresh_schedule, refresh_dataset_job

all_assets = load_assets_from_modules([data_assets, model_assets])
all_checks = load_asset_checks_from_modules([checks, model_assets])

defs = Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[refresh_dataset_job, full_pipeline_job, *model_assets.jobs],
    schedules=[nightly_refresh_schedule],
    sensors=[sensors.landing_files_sensor, *model_assets.sensors],
    resources={"tunegate": TunegateConfigResource()},
    executor=in_process_executor,
)
