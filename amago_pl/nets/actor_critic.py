"""Alias: ``amago_pl.nets.actor_critic`` is ``amago_pl.modules.actor_critic`` (same module object)."""

import sys

from amago_pl.modules import actor_critic as _target

sys.modules[__name__] = _target
