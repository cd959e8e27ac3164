"""Alias: ``amago_pl.nets.utils`` is ``amago_pl.modules.utils`` (same module object)."""

import sys

from amago_pl.modules import utils as _target

sys.modules[__name__] = _target
