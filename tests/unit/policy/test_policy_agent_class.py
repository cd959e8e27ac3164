"""A policy file names its agent's class, and loading rebuilds that class without ``agent_cls=``.

``ProbeAgent`` has exactly the weights of the plain ``Agent``: before files named their class, the
loader tried ``Agent`` first and silently returned the wrong class for it. A class that is not
registered is refused with a message that names it and says how to register it; a file written
before classes were recorded still loads through the old fallback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from amago_pl import Policy
from amago_pl.modules import agent_registry
from amago_pl.modules import hparams as hp
from amago_pl.modules.agent import Agent, register_agent
from amago_pl.policy import PolicyLoadError
from amago_pl.policy.loading import AGENT_CLASS_KEY, OLD_AGENT_CLASS_KEY
from tests.integration.policy_support import tiny_agent


class ProbeAgent(Agent):
    """An Agent subclass that changes no weights (so only its recorded name tells it apart)."""


class UnregisteredAgent(Agent):
    pass


def _as(agent: Agent, cls: type) -> Agent:
    """``agent`` with its class swapped to ``cls`` (same weights, same hyperparameters)."""
    agent.__class__ = cls
    return agent


@pytest.fixture
def probe_registered() -> Iterator[None]:
    register_agent("probe_agent")(ProbeAgent)
    yield
    # The registries are process-global: leave them as other tests expect them.
    agent_registry._AGENTS.pop("probe_agent", None)  # noqa: SLF001
    hp._REGISTERED.pop(hp.import_path(ProbeAgent), None)  # noqa: SLF001


def test_registered_subclass_loads_as_itself(tmp_path, probe_registered):
    path = tmp_path / "policy.pt"
    Policy.from_agent(_as(tiny_agent("cartpole"), ProbeAgent)).save(path)
    blob = torch.load(path, weights_only=True)
    assert blob[AGENT_CLASS_KEY] == "probe_agent"  # the register_agent name, a plain string
    assert type(Policy.from_checkpoint(path).agent) is ProbeAgent

    # A file written before classes were recorded: the old fallback (plain Agent first).
    del blob[AGENT_CLASS_KEY]
    torch.save(blob, tmp_path / "old.pt")
    assert type(Policy.from_checkpoint(tmp_path / "old.pt").agent) is Agent
    # Early policy files named the import path under another key: still read.
    blob[OLD_AGENT_CLASS_KEY] = hp.import_path(ProbeAgent)
    torch.save(blob, tmp_path / "early.pt")
    assert type(Policy.from_checkpoint(tmp_path / "early.pt").agent) is ProbeAgent


def test_unregistered_class_is_named_with_the_fix(tmp_path):
    path = tmp_path / "policy.pt"
    Policy.from_agent(_as(tiny_agent("cartpole"), UnregisteredAgent)).save(path)
    recorded = torch.load(path, weights_only=True)[AGENT_CLASS_KEY]
    assert recorded == f"{__name__}.UnregisteredAgent"  # no register_agent name: the import path
    with pytest.raises(PolicyLoadError) as err:
        Policy.from_checkpoint(path)
    message = str(err.value)
    for part in (recorded, "not registered", "@register_agent(", "register_checkpoint_class", "agent_cls="):
        assert part in message, part
    assert type(Policy.from_checkpoint(path, agent_cls=UnregisteredAgent).agent) is UnregisteredAgent


def test_a_name_that_is_no_agent_is_refused(tmp_path):
    path = tmp_path / "policy.pt"
    Policy.from_agent(tiny_agent("cartpole")).save(path)
    blob = torch.load(path, weights_only=True)
    assert blob[AGENT_CLASS_KEY] == "agent"
    blob[AGENT_CLASS_KEY] = "amago_pl.nets.actor_critic.Actor"  # registered, but not an agent
    torch.save(blob, path)
    with pytest.raises(PolicyLoadError, match="not an Agent subclass"):
        Policy.from_checkpoint(path)
    blob[AGENT_CLASS_KEY] = "os.system"  # a crafted name: refused, never imported or called
    torch.save(blob, path)
    with pytest.raises(PolicyLoadError, match="'os.system', which is not registered"):
        Policy.from_checkpoint(path)
    blob[AGENT_CLASS_KEY] = ["agent"]
    torch.save(blob, path)
    with pytest.raises(PolicyLoadError, match="should be a class name"):
        Policy.from_checkpoint(path)
