"""The check a checkpoint's stored gin config passes before it is bound: no code runs from data.

A checkpoint carries the gin config of the run that wrote it (``checkpoint.GIN_KEY``), so a loaded
agent gets the same encoder keywords. Binding that text must not import a module, read a file or
call a constructor the file names: ``checked_gin_text`` lets through only bindings of configurables
registered in this process and calls of the model's own configurables, and names every other line.
``amago_pl.modules.checkpoint`` re-exports both public names.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import gin

from amago_pl import compat
from amago_pl.modules.gin_index import is_amago_pl_configurable

log = logging.getLogger("amago_pl.modules.checkpoint")  # the logger these messages always used


class UnsafeGinConfigError(ValueError):
    """A checkpoint's stored gin config would import a module, read a file or bind something this
    process does not know."""


def unsafe_gin_message(source: Any, problems: list[str]) -> str:
    listed = "\n".join(f"  - {p}" for p in problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return (
        f"the gin config stored in {source} is not loaded:\n{listed}{more}\n"
        "A checkpoint never imports modules, reads files or binds unknown names. If you trust the "
        "file and it comes from your own code, import the modules that define these configurables "
        "(and register your classes with register_checkpoint_class) before loading it."
    )


def checked_gin_text(config: str, source: Any = "the checkpoint") -> str:
    """The stored gin ``config`` ready to bind, or ``UnsafeGinConfigError`` listing every line that
    is not a binding of a configurable registered in this process.

    ``import m`` lines pass only when ``m`` is already imported here (then they do nothing), and are
    blanked; ``include`` lines, references (``@name``) to unknown configurables, calls (``@name()``)
    of configurables outside the model's code and bindings of configurables this process does not
    register (``os.system.command``, ``MyEnv.size`` before ``MyEnv``'s module is imported) are
    refused: binding a config must not run code named by a file, and a binding that would be
    silently dropped is named instead. Bindings of amago_pl's own configurables in modules not
    imported here (``gin_index``: env and exploration settings when only a policy is loaded)
    configure nothing in this process: skipped, and logged.
    """
    from gin import config_parser

    config = compat.rewrite_gin_text(config)
    lines = config.splitlines(keepends=True)
    parser = config_parser.ConfigParser(config, gin.config.ParserDelegate(skip_unknown=True))
    problems: list[str] = []
    skipped: list[str] = []  # amago_pl's own, in modules not imported here: they configure nothing
    try:
        statements = list(parser)
    except Exception as err:  # a syntax error (or a file of another gin version)
        raise UnsafeGinConfigError(unsafe_gin_message(source, [f"unparsable: {err}"])) from None
    for st in statements:
        kind = type(st).__name__
        where = f"line {st.location.line_num}: {lines[st.location.line_num - 1].strip()!r}"
        if kind == "ImportStatement":
            module = st.module
            if module == "__gin__.dynamic_registration" or module in sys.modules:
                lines[st.location.line_num - 1] = "\n"  # already imported: nothing to run
            else:
                problems.append(f"{where} imports {module}, which this process has not imported")
        elif kind == "IncludeStatement":
            problems.append(f"{where} includes another file")
        elif kind == "BindingStatement":
            if gin.config._REGISTRY.get_match(st.selector) is None:  # noqa: SLF001 - no public lookup
                if is_amago_pl_configurable(st.selector):
                    skipped.append(st.selector)  # amago_pl's own, in a module not imported here
                else:
                    problems.append(f"{where} binds {st.selector}, which is not a registered configurable")
                lines[st.location.line_num - 1] = "\n"
            for ref in _references(st.value):
                problems.append(f"{where} refers to @{ref}, which is not a registered configurable")
            for ref in _calls_outside_model(st.value):
                problems.append(
                    f"{where} calls @{ref}(), which is not part of the model: only the model's own "
                    "configurables (amago_pl.nets, amago_pl.modules) may be called while it is built"
                )
    if problems:
        raise UnsafeGinConfigError(unsafe_gin_message(source, problems))
    if skipped:
        log.info("checkpoint gin config: not binding %s (not defined in this process)", sorted(set(skipped)))
    return "".join(lines)


def _references(value: Any) -> list[str]:
    """Names of unknown configurables ``@name`` references in a parsed binding value."""
    if type(value).__name__ == "_UnknownConfigurableReference":
        return [value.selector]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _references(v)]
    if isinstance(value, dict):
        return [r for v in list(value.keys()) + list(value.values()) for r in _references(v)]
    return []


_MODEL_CODE = ("amago_pl.nets.", "amago_pl.modules.")


def _calls_outside_model(value: Any) -> list[str]:
    """Registered configurables that evaluated references (``@name()``) in a parsed binding value
    would call, outside the model's code. gin calls them while the agent is built, with arguments
    the file binds: an env factory's env id of the form ``module:Env`` makes gymnasium import that
    module (https://gymnasium.farama.org/api/registry/#gymnasium.make), and ``@gin.singleton()`` calls
    any constructor. Plain references (``@name``) only pass the object, as the model's keywords do."""
    if isinstance(value, gin.config.ConfigurableReference):
        selector = value.configurable.selector
        return [selector] if value.evaluate and not selector.startswith(_MODEL_CODE) else []
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _calls_outside_model(v)]
    if isinstance(value, dict):
        return [r for v in list(value.keys()) + list(value.values()) for r in _calls_outside_model(v)]
    return []
