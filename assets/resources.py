"""Dagster resources: the project config, read once per run from a YAML file or the embedded defaults."""

import os
from typing import Optional

from dagster import ConfigurableResource

from pipeline.config import TunegateConfig, load_config


class TunegateConfigResource(ConfigurableResource):
    """Points at the project config file; `None` (and no TUNEGATE_CONFIG) means the embedded defaults."""

    config_path: Optional[str] = None

    def load(self) -> TunegateConfig:
        return load_config(self.config_path or os.environ.get("TUNEGATE_CONFIG") or None)
