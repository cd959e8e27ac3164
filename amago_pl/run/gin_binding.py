"""Turning gin text and ``{"Class.param": value}`` pairs into bindings: every module with
configurables imported first, old (``amago.*`` or earlier amago_pl) selectors renamed to current
ones, a "did you mean" hint for a name gin does not know, and a check of bound values against
plain ``int``/``float``/``bool``/``str`` annotations before anything is built.

The front doors (``cli_utils.use_config``, the ``amago-pl`` CLI, ``Experiment``) all bind through
these, so a binding means the same in a script, a gin file and on the command line.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any

import gin

from amago_pl import compat

# The original split these modules' classes over several of ours; their short class names resolve
# uniquely, so the module part is dropped.
_SHORT_NAME_MODULES = ("amago.loading.", "amago.hindsight.", "amago_pl.loading.", "amago_pl.hindsight.")

_CONFIGURABLE_MODULES = (
    "amago_pl.nets.tstep_encoders",
    "amago_pl.nets.traj_encoders",
    "amago_pl.nets.transformer",
    "amago_pl.nets.cnn",
    "amago_pl.nets.ff",
    "amago_pl.nets.utils",
    "amago_pl.nets.actor_critic",
    "amago_pl.nets.critics",
    "amago_pl.nets.attention",
    "amago_pl.nets.attention_extras",
    "amago_pl.nets.goal_embedders",
    "amago_pl.nets.popart",
    "amago_pl.nets.policy_dists",
    "amago_pl.modules.losses",
    "amago_pl.modules.agent",
    "amago_pl.modules.multitask_agent",
    "amago_pl.modules.nonfinite",
    "amago_pl.utils",
    "amago_pl.envs",
    "amago_pl.envs.builtin",
    "amago_pl.datamodules",
    "amago_pl.experiment",
)


def register_all_configurables() -> None:
    """Import every module that declares gin configurables, so any binding can resolve."""
    for name in _CONFIGURABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if not err.name or not err.name.startswith("amago_pl"):
                raise


def port_binding_name(name: str) -> str:
    """An original ``amago.*`` or an earlier amago_pl layout's gin path -> its current spelling
    (the alias table of ``amago_pl/compat.py``); current names pass unchanged."""
    for old in _SHORT_NAME_MODULES:
        if name.startswith(old):
            return name[len(old) :]
    if name.startswith("amago."):
        name = "amago_pl." + name[len("amago.") :]
    return compat.rewrite_gin_key(name)


def _known_binding_names() -> list[str]:
    """Every ``Configurable.param`` (short and full) gin knows, for "did you mean" hints."""
    import inspect

    names: list[str] = []
    for selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001 - no public listing API
        short = selector.split(".")[-1]
        try:
            params = list(inspect.signature(configurable.wrapped).parameters)
        except (TypeError, ValueError):
            params = []
        for p in params:
            if p not in ("self", "args", "kwargs"):
                names += [f"{short}.{p}", f"{selector}.{p}"]
    return names


def explain_bad_binding(name: str, err: Exception) -> ValueError:
    close = difflib.get_close_matches(name, _known_binding_names(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"gin binding '{name}' is not valid: {err}.{hint}")


def _simple_type_error(expected: Any, value: Any) -> bool:
    """True when ``value`` clearly contradicts a plain int/float/bool/str annotation."""
    if isinstance(value, gin.config.ConfigurableReference) or value is gin.REQUIRED or value is None:
        return False
    if expected is bool:
        return not isinstance(value, bool)
    if expected is int:
        return isinstance(value, bool) or not isinstance(value, int)
    if expected is float:
        return isinstance(value, bool) or not isinstance(value, (int, float))
    if expected is str:
        return not isinstance(value, str)
    return False


def check_binding_types() -> None:
    """Fail before anything is built when a bound value contradicts a plain type annotation.

    Only unambiguous cases are checked (a parameter annotated exactly ``int``, ``float``, ``bool``
    or ``str``); everything else is left to the class itself.
    """
    import inspect
    import typing

    problems = []
    for (_scope, selector), params in gin.config._CONFIG.items():  # noqa: SLF001 - no public listing API
        configurable = gin.config._REGISTRY.get_match(selector)  # noqa: SLF001
        if configurable is None:
            continue
        target = configurable.wrapped
        try:
            hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
        except Exception:  # unresolvable annotations: nothing to check
            continue
        for param, value in params.items():
            expected = hints.get(param)
            if expected in (int, float, bool, str) and _simple_type_error(expected, value):
                problems.append(
                    f"{configurable.name}.{param} = {value!r}: expected {expected.__name__}, got {type(value).__name__}"
                )
    if problems:
        raise ValueError("gin values of the wrong type:\n  - " + "\n  - ".join(problems))


def bind(name: str, value: Any) -> None:
    """``gin.bind_parameter`` with the porting rename and a helpful error."""
    name = port_binding_name(name)
    try:
        with gin.unlock_config():
            gin.bind_parameter(name, value)
    except (ValueError, KeyError) as err:
        raise explain_bad_binding(name, err) from err


def parse_gin(files: Iterable[str] = (), bindings: Iterable[str] = ()) -> None:
    """Apply ``.gin`` files, then binding strings ("Class.param = value"), in order."""
    register_all_configurables()
    for path in files:
        with gin.unlock_config():
            gin.parse_config_file(path)
    for line in bindings:
        text = line
        if "=" in line:
            lhs, rhs = line.split("=", 1)
            # the value may name configurables too (`@amago.agent.exp_filter`)
            text = f"{port_binding_name(lhs.strip())} = {compat.rewrite_gin_text(rhs.strip())}"
        try:
            with gin.unlock_config():
                gin.parse_config(text)
        except (ValueError, KeyError, SyntaxError) as err:
            raise explain_bad_binding(text.split("=")[0].strip(), err) from err
