"""lunar-pdh flight software: bus, imaging core, downlink, ground, process supervision."""

__version__ = "0.1.0"
