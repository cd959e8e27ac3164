"""A trained agent as a policy: load it safely, act step by step, evaluate it, export it.

``Policy`` (policy.py), ``evaluate_policy`` (evaluate.py), the compact policy file (compact.py), the
TorchScript export of the step function (export.py), and the one step that every rollout and every
``Policy`` runs (step.py). See docs/policy.md.
"""

from amago_pl.policy.analysis import PolicyDetails
from amago_pl.policy.evaluate import EvaluationResult, evaluate_policy
from amago_pl.policy.loading import PolicyLoadError
from amago_pl.policy.policy import Policy, SpaceMismatchError

__all__ = [
    "EvaluationResult",
    "Policy",
    "PolicyDetails",
    "PolicyLoadError",
    "SpaceMismatchError",
    "evaluate_policy",
]
