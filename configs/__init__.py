"""The configs shipped with lunar-pdh, as package data: ``demo.yaml`` and ``multihost.yaml``, camera and
mechanism profiles (``cameras/``, ``mechanisms/``), the relay contact plan and the scenarios.

No code: a package only so that an installed wheel carries this folder and
:func:`framework.config.config_dir` finds it wherever the project is installed.
"""
