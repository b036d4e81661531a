"""Command-line parsing shared by the ``pyg-hipts cg`` commands: every option may also come from
``--config file.yaml`` (later options win, as in ``pyg-hipts fit``)."""

from __future__ import annotations

from jsonargparse import ActionConfigFile, ArgumentParser


def command_parser(name: str, description: str) -> ArgumentParser:
    """A parser for ``pyg-hipts cg <name>`` with ``--config``."""
    parser = ArgumentParser(prog=f"pyg-hipts cg {name}", description=description, exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file of options")
    return parser
