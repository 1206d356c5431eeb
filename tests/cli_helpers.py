"""Shared by the CLI tests: walk every (sub)command parser of a command."""

from __future__ import annotations

import argparse
from collections.abc import Iterator


def parser_pages(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parser_pages(sub)
