"""Alias: ``amago_pl.nets.registry`` is ``amago_pl.modules.registry`` (same module object)."""

import sys

from amago_pl.modules import registry as _target

sys.modules[__name__] = _target
