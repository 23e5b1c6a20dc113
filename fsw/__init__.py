"""lunar-pdh flight software: the components that run on the lander (broker, imaging core, downlink)."""

from framework import __version__

__all__ = ["__version__"]
