"""JSON Schema of scenario files, generated from the pydantic models.

Editors (VS Code's YAML extension, JetBrains) validate and complete scenario
files with it: put ``# yaml-language-server: $schema=../schemas/scenario.schema.json``
at the top of a file. The committed copy in schemas/ is checked against this
generator by a unit test, so it never drifts from the models.
"""

from __future__ import annotations

import json
from typing import Any

from chaos.scenario.model import Scenario

SCHEMA_ID = "https://gateway-chaos.dev/schemas/scenario.schema.json"


def scenario_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(mode="validation", by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "gateway-chaos scenario",
        "description": "A chaos scenario: services, proxies, load, phases with faults, assertions.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text() -> str:
    return json.dumps(scenario_schema(), indent=2, sort_keys=True) + "\n"
