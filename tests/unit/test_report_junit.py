"""junit.xml: valid against the Jenkins xUnit JUnit schema (junit-10.xsd) CI systems read."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from lxml import etree

from chaos.report.junit import render_junit
from tests.fixtures.report_cases import EVIL, FIXTURES, RUNS, hand_built, recorded, with_evil_text


@pytest.fixture(scope="module")
def xsd() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(FIXTURES / "junit-10.xsd")))


def _valid(xsd: etree.XMLSchema, text: str) -> ET.Element:
    doc = etree.fromstring(text.encode())
    assert xsd.validate(doc), xsd.error_log
    return ET.fromstring(text.encode())


@pytest.mark.parametrize("run", ["pass", "fail"])
def test_recorded_runs_are_valid(xsd: etree.XMLSchema, run: str) -> None:
    _valid(xsd, (RUNS / run / "junit.xml").read_text())
    root = _valid(xsd, render_junit(recorded(run)))
    suites = root.findall("testsuite")
    assert len(suites) == 1 and suites[0].get("name") == "backend-crash"
    assert len(suites[0].findall("testcase")) == len(recorded(run).assertions)


def test_one_case_per_assertion_with_observed_vs_bound(xsd: etree.XMLSchema) -> None:
    result = hand_built()
    suite = _valid(xsd, render_junit(result)).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == \
        ("3", "1", "1", "0")
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == [f"backend-crash.{a.phase}" for a in result.assertions]
    passed, failed, unsure = cases
    assert passed.find("failure") is None and passed.find("skipped") is None
    failure = failed.find("failure")
    assert failure is not None
    message = failure.get("message") or ""
    assert "observed 60" in message and "expected resets == 0" in message
    assert "clients saw a TCP reset" in message
    skipped = unsure.find("skipped")
    assert skipped is not None and (skipped.get("message") or "").startswith("inconclusive")


@pytest.mark.parametrize("verdict", ["error", "interrupted"])
def test_error_and_interrupted_runs(xsd: etree.XMLSchema, verdict: str) -> None:
    result = hand_built()
    result.verdict, result.assertions = verdict, []
    result.error = "service 'gateway' did not become ready\n\x1b[31mERROR\x1b[0m boom\x00"
    suite = _valid(xsd, render_junit(result)).find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("tests") == "1"
    error = suite.find("testcase/error")
    assert error is not None and error.get("type") == verdict
    assert "\x1b" not in (error.text or "") and "ERROR boom" in (error.text or "")


def test_text_is_escaped_not_markup(xsd: etree.XMLSchema) -> None:
    root = _valid(xsd, render_junit(with_evil_text(hand_built())))
    messages = [f.get("message") for f in root.iter("failure")]
    assert any(EVIL in (m or "") for m in messages)
