"""JUnit XML: one testsuite per scenario, one testcase per assertion.

Valid against the Jenkins xUnit junit-10.xsd, the de-facto schema that GitHub Actions
reporters, GitLab and Jenkins read: a failed assertion is a <failure> whose message
gives observed value and bound, an inconclusive one is <skipped>, and a run that
errored or was interrupted gets one extra testcase with an <error>.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

from chaos.report.text import clean
from chaos.verdict.result import AssertionResult, Result


def case_name(item: AssertionResult) -> str:
    return f"[{item.phase}] {item.label} {item.bound}"


def _ci(item: AssertionResult) -> str:
    if item.ci_low is None or item.ci_high is None:
        return ""
    return f" (95% CI {item.ci_low:.4g} to {item.ci_high:.4g})"


def failure_message(item: AssertionResult) -> str:
    head = f"observed {item.observed}{_ci(item)}, expected {item.label} {item.bound}"
    return f"{head}: {item.message}" if item.message else head


def render_junit(result: Result) -> str:
    statuses = [a.status for a in result.assertions]
    failures = statuses.count("fail")
    skipped = statuses.count("inconclusive")
    errors = 1 if result.verdict in ("error", "interrupted") else 0
    tests = len(result.assertions) + errors
    time = f"{max(result.duration_s, 0.0):.3f}"
    suites = ET.Element("testsuites", name="gateway-chaos", tests=str(tests),
                        failures=str(failures), errors=str(errors), time=time)
    suite = ET.SubElement(suites, "testsuite", name=clean(result.scenario), tests=str(tests),
                          failures=str(failures), errors=str(errors), skipped=str(skipped),
                          time=time, timestamp=clean(result.started_at),
                          hostname=clean(socket.gethostname()), file=clean(result.file))
    props = ET.SubElement(suite, "properties")
    for key, value in (("run_id", result.run_id), ("verdict", result.verdict),
                       ("provider", result.provider), ("file", result.file),
                       ("command", result.command),
                       ("score", "" if result.score is None else str(result.score))):
        ET.SubElement(props, "property", name=key, value=clean(value))
    witness = getattr(result, "witness", None)  # issue 18: which side of the gateway was seen
    if isinstance(witness, dict) and witness.get("kind"):
        ET.SubElement(props, "property", name="witness", value=clean(witness["kind"]))
    for item in result.assertions:
        case = ET.SubElement(suite, "testcase", classname=clean(f"{result.scenario}.{item.phase}"),
                             name=clean(case_name(item)), time="0")
        detail = (f"phase={item.phase} check={item.label} bound={item.bound} "
                  f"observed={item.observed}{_ci(item)}\n{item.message}").strip()
        if item.status == "fail":
            failure = ET.SubElement(case, "failure", type="AssertionFailed",
                                    message=clean(failure_message(item)))
            failure.text = clean(detail)
        elif item.status == "inconclusive":
            skip = ET.SubElement(case, "skipped",
                                 message=clean("inconclusive: " + failure_message(item)))
            skip.text = clean(detail)
    if errors:
        case = ET.SubElement(suite, "testcase", classname=clean(result.scenario), name="run",
                             time=time)
        error = ET.SubElement(case, "error", type=result.verdict,
                              message=clean((result.error or result.verdict).splitlines()[0]
                                            if (result.error or "").strip() else result.verdict))
        error.text = clean(result.error or "")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
