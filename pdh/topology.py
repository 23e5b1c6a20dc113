"""The topology: every process kind lunar-pdh can run, registered in one place.

Each component declares its kind beside its interface table (``KIND`` in its
``interface.py``); this module, in the tools layer above every component, is
the one place that lists them and hands them to the framework's registry
(:func:`framework.kinds.register`). HIL kinds are registered here too, from
``hil/``: nothing below the tools imports ``hil``.
"""

from __future__ import annotations

from drivers.camera.interface import KIND as CAMERA_DRIVER
from drivers.deploy.interface import KIND as DEPLOY_DRIVER
from framework.kinds import KINDS, KindSpec, register
from fsw.broker.interface import KIND as BROKER
from fsw.downlink.interface import KIND as DOWNLINK
from fsw.imaging.interface import KIND as IMAGING
from ground.interface import KIND as GROUND_STATION
from hil.camera.interface import KIND as CAMERA_EMULATOR
from hil.deploy.interface import KIND as DEPLOY_EMULATOR
from hil.relay.interface import KIND as RELAY_EMULATOR

__all__ = ["ALL_KINDS", "KINDS"]

ALL_KINDS: tuple[KindSpec, ...] = (
    BROKER, CAMERA_EMULATOR, CAMERA_DRIVER, IMAGING, DOWNLINK, RELAY_EMULATOR, GROUND_STATION,
    DEPLOY_EMULATOR, DEPLOY_DRIVER,
)

register(*ALL_KINDS)
