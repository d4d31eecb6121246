"""`crossroads schema`: the JSON Schema of scenario files, for editors and checkers."""

from __future__ import annotations

import argparse
import json
from typing import Any

from agencies.spec import WorldSpec
from loadtests.spec import LoadtestSection
from scenarios.sections import ScenarioFile, scenario_json_schema

__all__ = ["register", "schema_text"]

_HELP = """\
Print the JSON Schema (draft 2020-12) of a scenario file to stdout: every section a scenario may
hold (the simulation's keys, `world:` and `loadtest:`), what each key expects, its default and
what it means. The package ships it as scenarios/scenario.schema.json:
    crossroads schema > scenarios/scenario.schema.json

Point an editor at it to complete and check scenario files as you type:
  - editors with the YAML language server (VS Code's "YAML" extension by Red Hat, Neovim,
    Helix, Zed, ...): the first line of a scenario file names its schema, as the shipped ones do
        # yaml-language-server: $schema=scenario.schema.json
    (a path relative to the YAML file, an absolute path or a URL); or map files to it in the
    editor's settings, e.g. VS Code: "yaml.schemas": {"scenarios/scenario.schema.json": "*.yaml"}
  - JetBrains IDEs: Settings > Languages & Frameworks > Schemas and DTDs > JSON Schema Mappings.
The schema checks each file alone: a file with `extends:` may leave out what it takes from the
other one. `crossroads simulate` and `crossroads loadtest` validate the same rules (and what ties
sections together, such as the stations a path names) before they run anything.
"""


def register(sub: Any) -> None:
    """Add `schema` to the `crossroads` sub-commands."""
    raw = argparse.RawDescriptionHelpFormatter
    what = "print the JSON Schema of scenario files"
    cmd = sub.add_parser("schema", help=what, description=_HELP, formatter_class=raw)
    cmd.set_defaults(func=run_schema)


def schema_text() -> str:
    """The JSON Schema of a scenario file whose world and load test are read as the live network reads them."""
    return json.dumps(scenario_json_schema(ScenarioFile[WorldSpec, LoadtestSection]), indent=2) + "\n"


def run_schema(args: argparse.Namespace) -> int:
    print(schema_text(), end="")
    return 0
