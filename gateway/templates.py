"""Notification message templates (``[notify] templates``): ``str.format`` fields by name
only, checked when the config is read.

A template is the owner's text, but it is formatted with values that came from a printer
(a file name): only plain named fields are allowed, never attribute or index access
(``{file.__class__}`` would reach into Python objects), and every value is a string, so a
format spec can only pad or cut text.
"""

from __future__ import annotations

import string

FIELDS = ("printer", "file", "state", "progress", "duration", "eta", "outcome")
_formatter = string.Formatter()


def template_problem(template: str) -> str | None:
    """What is wrong with a template, or None when it can be used."""
    try:
        parts = list(_formatter.parse(template))
    except ValueError as err:
        return f"not a template: {err}"
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in FIELDS:
            return f"unknown field {{{field}}}: use {', '.join('{' + f + '}' for f in FIELDS)}"
        if conversion is not None or (spec and "{" in spec):
            return f"field {{{field}}}: no conversions or nested fields"
        try:
            format("text", spec or "")
        except ValueError as err:
            return f"field {{{field}}}: format {spec!r} does not fit text ({err})"
    return None


def render(template: str, values: dict[str, str]) -> str:
    """The template with its fields filled (a template that passed ``template_problem``)."""
    return template.format_map({field: values.get(field, "") for field in FIELDS})
