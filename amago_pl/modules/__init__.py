"""The LightningModules: the Agent (agent.py), MultiTaskAgent, the loss parts and checkpoint keys."""

from amago_pl.modules import agent, multitask_agent  # noqa: F401 - registers both with gin
