"""Alias: ``amago_pl.nets.ff`` is ``amago_pl.modules.ff`` (same module object)."""

import sys

from amago_pl.modules import ff as _target

sys.modules[__name__] = _target
