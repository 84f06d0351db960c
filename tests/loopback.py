"""Embedded providers that a test reaches by URL, as a user reaches a server they run themselves.

Such a provider is given a known bearer key before it starts, and the client is given the same key the
way a user gives one, through the variable the endpoint names (`OPENAI_API_KEY` by default; tests/conftest.py
sets it for the session).
"""
from __future__ import annotations

import os
from pathlib import Path

LOOPBACK_KEY = "tg-test-loopback-key"


def start_keyed_provider(state_dir, **kw):
    """`LocalProvider.start` on `state_dir`, whose key is `LOOPBACK_KEY`."""
    from pipeline.model.endpoint import LocalProvider
    from pipeline.provider.auth import KEY_FILE

    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    path = state / KEY_FILE
    path.write_text(LOOPBACK_KEY)
    os.chmod(path, 0o600)
    return LocalProvider.start(state, **kw)
