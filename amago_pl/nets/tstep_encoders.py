"""Alias: ``amago_pl.nets.tstep_encoders`` is ``amago_pl.modules.tstep_encoders`` (same module object)."""

import sys

from amago_pl.modules import tstep_encoders as _target

sys.modules[__name__] = _target
