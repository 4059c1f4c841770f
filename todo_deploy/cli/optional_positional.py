"""An optional positional argument for an Invoke task (`inv aiops [playbook]`).

Invoke has no optional positionals: a positional whose value is None is
"missing", and the parser then eats the next bare token for it (even `--help`),
or fails at the end of the command line when none came. This module is the one
place that knows that rule (ParserContext.missing_positional_args reads
`Argument.value`); tests/unit/test_cli_parsing.py fails loudly if an Invoke
upgrade changes it.

The argument reports itself missing only when the command line holds a bare
token for it: the first token after the task's name that is neither a flag nor
a flag's value, unless that token names another task (`inv aiops verify`
chains two tasks). So `inv aiops`, `inv aiops -h` and `inv aiops verify` parse
as without it, `inv aiops doctor` fills it, and `inv aiops bogus` reaches the
task, which lists the valid names.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from invoke.parser import Argument


def token_for_positional(
    argv: list[str], names: Iterable[str], value_flags: set[str], tasks: set[str]
) -> str | None:
    """The bare token the positional of the task called one of `names` takes, if any."""
    names = set(names)
    starts = [index for index, token in enumerate(argv) if token in names]
    if not starts:
        return None
    tokens = iter(argv[starts[0] + 1:])
    for token in tokens:
        if token.startswith("-"):
            if token.split("=", 1)[0] in value_flags and "=" not in token:
                next(tokens, None)
            continue
        return None if token in tasks else token
    return None


class OptionalPositional(Argument):
    def __init__(
        self,
        *,
        task_names: Iterable[str],
        value_flags: set[str],
        other_tasks: Callable[[], set[str]],
        argv: Callable[[], list[str]] = lambda: sys.argv[1:],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._decide = lambda: token_for_positional(
            argv(), task_names, value_flags, other_tasks()
        ) is not None

    @property
    def value(self) -> Any:
        if self._value is not None:
            return self._value
        return None if self._decide() else ""

    @value.setter
    def value(self, arg: str) -> None:
        self.set_value(arg, cast=True)


def make_optional(
    arguments: list[Argument],
    name: str,
    task_names: Iterable[str],
    other_tasks: Callable[[], set[str]],
    argv: Callable[[], list[str]] = lambda: sys.argv[1:],
) -> list[Argument]:
    """`arguments` with the positional `name` replaced by an OptionalPositional."""
    value_flags = {
        flag for arg in arguments if arg.kind is not bool and not arg.positional
        for flag in (f"--{n}" if len(n) > 1 else f"-{n}" for n in arg.names)
    }
    replaced = []
    for argument in arguments:
        if argument.name == name:
            argument = OptionalPositional(
                task_names=task_names, value_flags=value_flags, other_tasks=other_tasks,
                argv=argv, names=argument.names, kind=str, default=None,
                help=argument.help, positional=True,
            )
        replaced.append(argument)
    return replaced
