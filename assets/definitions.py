"""The tunegate code location: assets, checks, jobs, the nightly schedule, sensors and resources.

Runs use the in-process executor: every step of a multi-process run pays the heavy imports again
(Presidio, spaCy, GX), which costs more than the parallelism gains on a chain this linear.
The config is read once per run by the `tunegate` resource; the endpoint key comes from the
environment (`OPENAI_API_KEY`) through `dg.EnvVar` when it is set.
"""
import os
import warnings

import dagster as dg

from assets import checks, data_assets, model_assets
from assets.io_manager import VersionRefIOManager
from assets.jobs import ALL_JOBS
from assets.resources import CatalogResource, EndpointResource, TunegateConfigResource
from assets.schedules import nightly_refresh_schedule
from assets.sensors import ALL_SENSORS
from pipeline.code_version import STAGE_SOURCES, code_version

API_KEY_ENV = "OPENAI_API_KEY"
# `Output(data_version=...)` is marked beta; it is the documented way to give an output its content hash
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*data_version.*")

config_resource = TunegateConfigResource()

# each asset's code version is the hash of the source its stage runs (pipeline.code_version), so the UI
# marks an output stale when that code changes; the decorators' constant is the fallback
ASSETS = dg.map_asset_specs(
    lambda spec: spec.replace_attributes(code_version=code_version(spec.key.to_user_string()))
    if spec.key.to_user_string() in STAGE_SOURCES else spec,
    dg.load_assets_from_modules([data_assets, model_assets]))

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=dg.load_asset_checks_from_modules([checks]),
    jobs=ALL_JOBS,
    schedules=[nightly_refresh_schedule],
    sensors=ALL_SENSORS,
    resources={
        "tunegate": config_resource,
        "catalog": CatalogResource(config=config_resource),
        # the embedded provider and key-less gateways need no key; a set variable is bound, never copied
        "endpoint": EndpointResource(config=config_resource,
                                     api_key=dg.EnvVar(API_KEY_ENV) if os.environ.get(API_KEY_ENV) else None),
        "io_manager": VersionRefIOManager(),
    },
    executor=dg.in_process_executor,
)
