"""Alias: ``amago_pl.nets.policy_dists`` is ``amago_pl.modules.policy_dists`` (same module object)."""

import sys

from amago_pl.modules import policy_dists as _target

sys.modules[__name__] = _target
