"""Alias: ``amago_pl.nets.traj_encoders`` is ``amago_pl.modules.traj_encoders`` (same module object)."""

import sys

from amago_pl.modules import traj_encoders as _target

sys.modules[__name__] = _target
