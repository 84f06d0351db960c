"""Dagster resources: the project config (loaded once per run), the DuckDB catalog and the model endpoint.

Each resource is a thin holder over `pipeline/`: the config resource validates the YAML once when a run
(or a sensor tick) starts and hands the same `TunegateConfig` to every step; the catalog and endpoint
resources derive what they hold from it, so the UI lists what each asset touches and the key comes from
the environment through `dg.EnvVar`, never from a file.
"""
from __future__ import annotations

import os
from typing import Optional

import dagster as dg
from pydantic import PrivateAttr

from pipeline.catalog import Catalog
from pipeline.config import EndpointSpec, TunegateConfig, load_config


class TunegateConfigResource(dg.ConfigurableResource):
    """The project config file; `None` (and no TUNEGATE_CONFIG) means the embedded defaults."""

    config_path: Optional[str] = None
    _cfg: Optional[TunegateConfig] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._cfg = self._read()

    def _read(self) -> TunegateConfig:
        return load_config(self.config_path or os.environ.get("TUNEGATE_CONFIG") or None)

    def load(self) -> TunegateConfig:
        """The config of this run: read and validated once, then shared by every step."""
        if self._cfg is None:  # used outside a run (a direct call in a test or a script)
            self._cfg = self._read()
        return self._cfg


class CatalogResource(dg.ConfigurableResource):
    """The DuckDB catalog of the config's warehouse (versions, lineage, jobs, evaluations, routes)."""

    config: TunegateConfigResource

    def catalog(self) -> Catalog:
        return Catalog(self.config.load().catalog_path)

    def exists(self) -> bool:
        return self.config.load().catalog_path.exists()


class EndpointResource(dg.ConfigurableResource):
    """The model endpoint: the config's `endpoint` section plus the API key from the environment.

    `api_key` is bound to `dg.EnvVar` in the definitions when the variable is set; the embedded
    provider and key-less gateways need none. The pipeline reads the same variable
    (`endpoint.api_key_env`), so a key never appears in config files or run metadata."""

    config: TunegateConfigResource
    api_key: Optional[str] = None

    def spec(self) -> EndpointSpec:
        return self.config.load().endpoint

    def client(self):
        """(openai client, endpoint id) for the configured endpoint, or the embedded provider."""
        from pipeline.model.steps import client_for

        client, endpoint_id = client_for(self.config.load())
        if self.api_key:
            client = client.with_options(api_key=self.api_key)
        return client, endpoint_id
