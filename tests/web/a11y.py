"""Accessibility and CSP checks run inside the page (no third-party checker is loaded).

``audit_page(page)`` returns a list of problems: form controls without a label, buttons and
links without an accessible name, images without alt, headings out of order, text whose
contrast with its background is below WCAG AA, inline style or handler attributes, and
targets smaller than 24 CSS pixels (WCAG 2.2 target size, minimum).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

AUDIT_JS = (Path(__file__).parent / "a11y.js").read_text()


def audit_page(page: Page) -> list[str]:
    problems: list[str] = page.evaluate(AUDIT_JS)
    return problems


def assert_accessible(page: Page) -> None:
    problems = audit_page(page)
    assert problems == [], "\n".join(problems)
