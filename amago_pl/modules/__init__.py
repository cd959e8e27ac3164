"""The LightningModules: the Agent (agent.py), MultiTaskAgent, the update's parts (update.py), the loss
formulas (losses.py), the non-finite-step guard (nonfinite.py) and the checkpoint keys (checkpoint.py)."""

from amago_pl.modules import agent, multitask_agent  # noqa: F401 - registers both with gin
