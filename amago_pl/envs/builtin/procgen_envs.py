"""Multi-task Procgen (the original's amago/envs/builtin/procgen_envs.py at 2d85600): not
available here. Constructing ``ProcgenAMAGO`` or ``TwoAttemptMTProcgen`` raises an ImportError
that says why (see ``REASON``); ``ALL_PROCGEN_GAMES`` is kept for scripts that list the games.
"""

from __future__ import annotations

from amago_pl.envs.builtin._unavailable import unavailable_env

PACKAGE = "procgen"
REASON = (
    "which has no wheel for Python 3.11 or newer (its last release, 0.10.7, stops at Python 3.10); "
    "its maintained forks procgen-mirror and procgen2 (0.10.7) do have Python 3.11 wheels but "
    "require numpy<2 and the retired gym<1.0, which conflict with the numpy>=2 that jax and "
    "opencv in amago_pl[envs-extra] require"
)

ALL_PROCGEN_GAMES = [
    "dodgeball",
    "caveflyer",
    "heist",
    "jumper",
    "maze",
    "miner",
    "fruitbot",
    "plunder",
    "chaser",
    "leaper",
    "bigfish",
    "starpilot",
    "bossfight",
    "ninja",
    "coinrun",
    "climber",
]

TwoAttemptMTProcgen = unavailable_env("TwoAttemptMTProcgen", PACKAGE, REASON)
ProcgenAMAGO = unavailable_env("ProcgenAMAGO", PACKAGE, REASON)
# The original's example 09 imports this name, which its procgen_envs.py never defined; it fails the
# same clear way here instead of with an ImportError on the name.
TwoShotMTProcgen = unavailable_env("TwoShotMTProcgen", PACKAGE, REASON)
