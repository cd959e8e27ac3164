"""Alias: ``amago_pl.nets.transformer`` is ``amago_pl.modules.transformer`` (same module object)."""

import sys

from amago_pl.modules import transformer as _target

sys.modules[__name__] = _target
