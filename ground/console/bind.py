"""Where the console may listen: loopback unless the config allows more. No sockets.

A console shows the lander and sends it commands; one reachable from a network is an
operator's decision, written in the config (``allow_remote: true``), never a default.
"""

from __future__ import annotations

import ipaddress

from framework.errors import ConfigError

__all__ = ["check_bind", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` counts; every other name does not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, allow_remote: bool, where: str) -> tuple[str, int]:
    """``(host, port)`` to serve on; ConfigError naming ``where`` for an address beyond loopback
    (``*`` and ``0.0.0.0`` included) unless ``allow_remote``."""
    if not allow_remote and not is_loopback(host):
        raise ConfigError("<config>", where, "a loopback address (127.0.0.1) unless allow_remote: true", host)
    return host, port
