"""The embedded provider's bearer key: one per state directory (so one per warehouse), made on first use.

The key lives in `<state_dir>/api_key`, readable by its owner only; the server requires it on every
`/v1` request and `pipeline.model.endpoint` passes it to the client, so nobody has to handle it. Any
other local user or process without the file gets 401, training data included.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_FILE = "api_key"


def api_key(state_dir: str | os.PathLike) -> str:
    """The state directory's key, created (0600, atomically) if there is none yet."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)  # files/ holds the uploaded training data
    path = state / KEY_FILE
    try:
        key = path.read_text().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    tmp = state / f".{KEY_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("tg-" + secrets.token_urlsafe(32))
    try:
        os.link(tmp, path)  # first writer wins; a concurrent creator reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
