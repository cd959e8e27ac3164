"""Alias: ``amago_pl.nets.cnn`` is ``amago_pl.modules.cnn`` (same module object)."""

import sys

from amago_pl.modules import cnn as _target

sys.modules[__name__] = _target
