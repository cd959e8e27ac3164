"""Alias: ``amago_pl.nets.attention`` is ``amago_pl.modules.attention`` (same module object)."""

import sys

from amago_pl.modules import attention as _target

sys.modules[__name__] = _target
