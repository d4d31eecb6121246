"""What the commands share (testbed/commands/arguments.py): options, durations, settings, failures."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.commands.arguments import (
    add_command,
    add_hosts,
    add_out,
    add_quiet,
    add_seed,
    add_state,
    duration,
    failed,
    settings,
)


@dataclass(frozen=True, kw_only=True)
class _Plan:
    out: Path
    seed: int = 0
    hosts: int = 4
    progress: bool = True
    gap_s: float = 1.5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossroads")
    sub = parser.add_subparsers(dest="command")
    run = add_command(sub, "run", lambda _args: 0, help_text="a run", description="A run.\n  as written")
    add_out(run, "run folder")
    add_seed(run, "seed", default=7)
    add_hosts(run, 3)
    add_quiet(run)
    add_state(run, "state folder", required=False)
    run.add_argument("--window", type=duration("--window"))
    return parser


def test_the_options_parse_to_their_names_and_defaults(tmp_path: Path) -> None:
    args = _parser().parse_args(["run", "--out", str(tmp_path), "--window", "2min"])
    assert (args.out, args.seed, args.hosts, args.quiet, args.state, args.window) == (
        tmp_path,
        7,
        3,
        False,
        None,
        120.0,
    )
    assert args.func(args) == 0


def test_out_without_a_default_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["run"])
    assert "--out" in capsys.readouterr().err


def test_a_bad_duration_names_where_it_was_given(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--out", str(tmp_path), "--window", "soon"])
    assert "--window: expected a duration" in capsys.readouterr().err


def test_settings_take_the_fields_the_arguments_hold_and_the_given_ones_win(tmp_path: Path) -> None:
    args = argparse.Namespace(out=tmp_path, seed=5, hosts=2, quiet=True, func=print)
    plan = settings(_Plan, args, hosts=9, progress=not args.quiet)
    assert plan == _Plan(out=tmp_path, seed=5, hosts=9, progress=False, gap_s=1.5)


def test_failed_says_it_in_one_line_and_returns_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert failed("demo", "no network", 3) == 3
    assert capsys.readouterr().err == "crossroads demo: no network\n"


def _every_parser(
    parser: argparse.ArgumentParser, name: str = "crossroads"
) -> list[tuple[str, argparse.ArgumentParser]]:
    """`parser` and each of its sub-commands' parsers, at every depth, with the words that call it."""
    found = [(name, parser)]
    for action in parser._actions:  # argparse keeps its sub-parsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for word, child in action.choices.items():
                found.extend(_every_parser(child, f"{name} {word}"))
    return found


def test_every_command_explains_itself_with_help() -> None:
    """`crossroads ... --help` renders for every command (a bare % in a help text broke
    `crossroads calibrate --help`: argparse formats help texts with %)."""
    from testbed.cli import build_parser

    parsers = _every_parser(build_parser())
    assert len(parsers) > 20  # every command module registered its commands
    for words, parser in parsers:
        text = parser.format_help()
        assert text.startswith(f"usage: {words}"), words
