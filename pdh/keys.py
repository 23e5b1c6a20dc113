"""The run's SDLS keys: made at run start beside its CURVE keys, so the ground and the lander share them.

The ingest (on board) and the ground station (the uplink's signer) each name the
security associations they use (``sa_file``); every key id those files name is
made in ``<keys_dir>/sdls/`` if missing (:func:`link.sdls.generate_key`: 32
random bytes, mode 0600). On one PC both ends read the same directory; on
separate hosts the operator copies ``sdls/`` to both, as real missions load
keys on the spacecraft before launch. Existing keys are never replaced.
"""

from __future__ import annotations

from pathlib import Path

from framework.config import Config, find_config
from link.sdls import generate_key, key_path, load_associations

__all__ = ["ensure_sdls_keys"]


def ensure_sdls_keys(config: Config, keys_dir: Path) -> list[str]:
    """Make the missing keys of every SA file the config's processes name; return the key ids made."""
    made: list[str] = []
    seen: set[Path] = set()
    for settings in config.processes.values():
        name = settings.get("sa_file")
        if not isinstance(name, str):
            continue
        sa_file = find_config(name)
        if sa_file in seen:
            continue
        seen.add(sa_file)
        for sa in load_associations(sa_file):
            if not key_path(keys_dir, sa.key_id).exists():
                generate_key(keys_dir, sa.key_id)
                made.append(sa.key_id)
    return made
