"""JUnit XML: one testsuite per scenario, one testcase per assertion."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from chaos.verdict.result import Result


def render_junit(result: Result) -> str:
    failures = sum(1 for a in result.assertions if not a.passed)
    errors = 1 if result.verdict in ("error", "interrupted") else 0
    tests = len(result.assertions) + errors
    suites = ET.Element("testsuites", name="gateway-chaos", tests=str(tests),
                        failures=str(failures), errors=str(errors), time=f"{result.duration_s:.2f}")
    suite = ET.SubElement(suites, "testsuite", name=result.scenario, tests=str(tests),
                          failures=str(failures), errors=str(errors), skipped="0",
                          time=f"{result.duration_s:.2f}", timestamp=result.started_at)
    props = ET.SubElement(suite, "properties")
    for key, value in (("run_id", result.run_id), ("provider", result.provider),
                       ("verdict", result.verdict), ("file", result.file)):
        ET.SubElement(props, "property", name=key, value=value)
    for item in result.assertions:
        case = ET.SubElement(suite, "testcase", classname=f"{result.scenario}.{item.phase}",
                             name=f"{item.kind} {item.bound}", time="0")
        if not item.passed:
            failure = ET.SubElement(case, "failure", type="AssertionFailed",
                                    message=item.message or f"observed {item.observed}")
            failure.text = f"phase={item.phase} bound={item.bound} observed={item.observed}"
    if errors:
        case = ET.SubElement(suite, "testcase", classname=result.scenario, name="run", time="0")
        error = ET.SubElement(case, "error", type=result.verdict, message=result.error or "")
        error.text = result.error or ""
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
