"""The `grid` sub-commands, each imported only when it runs.

`grid --help` lists every sub-command with its one-line help, but importing them all (and
letting Typer convert ~50 commands) costs more than the rest of the start-up together; so the
root group holds a stand-in per sub-command that knows its name and help (``SUBCOMMANDS``,
kept equal to the real ones by tests/test_startup.py) and becomes the real command, built by
Typer exactly as ``app.add_typer``/``app.command`` would, when resolved.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import sys
import types
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandInfo

# name -> (module under grid.cli, attribute, a Typer app (True) or a function, one-line help);
# in the order `grid --help` shows them (Typer lists commands before groups)
SUBCOMMANDS: dict[str, tuple[str, str, bool, str]] = {
    "server": (
        "admin",
        "server",
        False,
        "Run the team-mode API server: accounts, keys and datastores.",
    ),
    "worker": (
        "admin",
        "worker",
        False,
        "Run jobs (imports) for the servers on the same database and storage, until stopped\n"
        "(a job follows the rules of the server that accepted it, e.g. --allow-private-urls).",
    ),
    "login": (
        "account",
        "login",
        False,
        "Check the key with the server and save it for the next commands.",
    ),
    "logout": (
        "account",
        "logout",
        False,
        "Forget the saved key (the key itself stays valid: `grid key revoke` ends it).",
    ),
    "whoami": (
        "account",
        "whoami",
        False,
        "The user (and teams) the key in use belongs to, as the server sees it.",
    ),
    "datastore": (
        "datastore",
        "app",
        True,
        "Versioned datasets: create them from folders and files, list, browse and read them.",
    ),
    "admin": ("admin", "app", True, "Accounts of a team-mode server (on its database)."),
    "run": (
        "run",
        "app",
        True,
        "Run a script with datastores attached: grid run [--datastore NAME[:VERSION]]... "
        "SCRIPT [ARGS]...; and list, show, follow and stop runs.",
    ),
    "session": ("session", "app", True, "JupyterLab sessions with datastores attached."),
    "job": (
        "job",
        "app",
        True,
        "Work a grid server's workers do: imports, scheduled re-imports, gc.",
    ),
    "key": ("account", "key_app", True, "Your API keys: create, list, revoke."),
}


def load(name: str) -> Any:
    """The click command of sub-command ``name``, as the root group would hold it."""
    module, attr, is_app, _help = SUBCOMMANDS[name]
    target = getattr(importlib.import_module(f"grid.cli.{module}"), attr)
    holder = typer.Typer()  # the root's settings that reach its children are the defaults
    holder.callback()(_nothing)
    if not is_app:
        holder.command(name)(target)
    else:  # its own commands are converted when first used (groups at once)
        shell = copy.copy(target)
        shell.registered_commands = []
        holder.add_typer(shell, name=name)
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    cmd: Any = group.commands[name]
    if is_app:
        cmd.commands = _Commands(holder, target.registered_commands, cmd.commands)
    return defer_checks(cmd)


class _Commands(dict[str, Any]):
    """A group's commands, each converted by Typer (as its group would have converted it) when
    first looked up: `grid datastore list` converts one command, not seventeen."""

    def __init__(self, holder: Any, infos: list[Any], groups: dict[str, Any]) -> None:
        super().__init__()
        self._options = {
            "pretty_exceptions_short": holder.pretty_exceptions_short,
            "rich_markup_mode": holder.rich_markup_mode,
        }
        for info in infos:  # commands first, then groups, as Typer orders them
            name = info.name or typer.main.get_command_name(info.callback.__name__)
            if name:
                self[name] = info
        self.update(groups)

    def _real(self, name: str) -> Any:
        value = dict.__getitem__(self, name)
        if isinstance(value, CommandInfo):
            value = typer.main.get_command_from_info(value, **self._options)
            dict.__setitem__(self, name, defer_checks(value))
        return value

    def __getitem__(self, name: str) -> Any:
        return self._real(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self._real(name) if name in self else default

    def items(self) -> Any:
        return [(name, self._real(name)) for name in list(self)]

    def values(self) -> Any:
        return [self._real(name) for name in list(self)]


def defer_checks(cmd: Any) -> Any:
    """``cmd`` (and its sub-commands), its parameters checked by Typer's Pydantic adapters only
    when these have something to do.

    Typer builds a Pydantic ``TypeAdapter`` for every parameter it sees, given or not; yet a
    value not given (None) is never checked, and a ``str`` given to a plain ``str`` parameter
    comes back unchanged. Importing Pydantic costs a third of a command's start-up, so these
    two cases are answered without it, the rest by the same adapter as before. Typer versions
    without these internals are left as they are."""
    for param in getattr(cmd, "params", ()):
        _defer(param)
    made = cmd.get_help_option  # --help is made when first parsed
    cmd.get_help_option = lambda ctx: _defer(made(ctx))
    for sub in dict.values(getattr(cmd, "commands", {})):
        if not isinstance(sub, CommandInfo):  # (those not converted yet: when converted)
            defer_checks(sub)
    return cmd


def _defer(param: Any) -> Any:
    desc = getattr(param, "type_descriptor", None)
    deferred = _deferred_class()
    if deferred is not None and desc is not None and getattr(param, "_runtime_param", 0) is None:
        param._runtime_param = deferred(
            parameter_info=desc.parameter_info, annotation=desc.annotation, descriptor=desc
        )
    return param


@functools.cache
def _deferred_class() -> Any:
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
    except ImportError:  # pragma: no cover
        return None

    @dataclasses.dataclass(frozen=True)
    class Deferred(RuntimeParam):
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            d = self.descriptor
            if (
                d.annotation is str
                and d.file_annotation is None
                and d.parameter_info.parser is None
                and isinstance(value, str)
            ):
                return value
            real = build_runtime_param(d)
            return real._coerce_value(value, param=param, ctx=ctx)

    return Deferred


def _nothing() -> None:
    """(makes the holder a group)"""


class _Deferred(type):
    """The class of a stand-in for a rich class: calls and attributes go to the real one."""

    _real: tuple[str, str]

    def _load(cls) -> Any:
        module, name = cls._real
        return getattr(importlib.import_module(module), name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._load()(*args, **kwargs)

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(cls._load(), attr)


def import_rich_help() -> None:
    """Import Typer's help renderer without the two rich modules it imports but uses only for
    Markdown help and pretty tracebacks (which grid turns off): ~40% of its import time.

    Its names for them are stand-ins that import the real class on first use; the real modules
    stay importable by anyone, as before."""
    if "typer.rich_utils" in sys.modules:
        return
    stand_ins = {}
    for module, name in (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback")):
        if module not in sys.modules:
            stand_in = types.ModuleType(module)
            setattr(stand_in, name, _Deferred(name, (), {"_real": (module, name)}))
            stand_ins[module] = stand_in
    sys.modules.update(stand_ins)
    try:
        import typer.rich_utils  # noqa: F401
    finally:
        for module, stand_in in stand_ins.items():
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]


class _StandIn(TyperCommand):
    """A sub-command not imported yet: its name and help, for `grid --help`."""


class LazyGroup(TyperGroup):
    """The root group: stand-ins for the sub-commands, made real when one is resolved."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        defer_checks(self)  # (the sub-commands' when loaded)
        for name, (_module, _attr, _is_app, help_) in SUBCOMMANDS.items():
            self.commands[name] = _StandIn(name=name, help=help_)

    def real_command(self, name: str) -> Any:
        """Sub-command ``name``, imported and built if it was not yet."""
        cmd = self.commands[name]
        if isinstance(cmd, _StandIn):
            cmd = self.commands[name] = load(name)
        return cmd

    def get_params(self, ctx: Any) -> Any:
        return [_defer(p) for p in super().get_params(ctx)]  # with the completion options

    def format_help(self, ctx: Any, formatter: Any) -> None:
        import_rich_help()
        super().format_help(ctx, formatter)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(cmd, _StandIn):
            cmd = self.real_command(name)
        return name, cmd, rest
