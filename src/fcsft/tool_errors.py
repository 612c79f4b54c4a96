"""Tool results that say in their text that the call failed.

fcsft's own tools flag a failed call (`is_error`); a trajectory file from elsewhere (any
OpenAI-format file) has no such flag, and a failure there reads like one of

    Error: no filing for Nobody Inc        an error label opening the result
    KeyError: 'Nobody Inc'                 (an exception's name counts as one)
    Traceback (most recent call last):     a Python traceback, on any line
    HTTP 404 / HTTP/1.1 503 ...            an HTTP error status opening the result
    404 Not Found                          a 4xx/5xx code with its standard phrase
    {"error": "rate limited"}              a JSON object whose "error" is set

Only these shapes count. Prose that mentions errors ("no error occurred", "Errors: 0",
"error rate: 2%"), a JSON object whose "error" is null, false or empty, and numbers that merely
look like status codes ("404 pages indexed") do not.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus

# An exception's name is CamelCase (KeyError, requests.exceptions.HTTPError); a bare label
# may be written in any case (Error:, ERROR:, fatal:).
_LABEL = re.compile(r"(?:[A-Za-z_][\w.]*(?:Error|Exception)|(?i:error|exception|fatal))[ \t]*:")
_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)
_HTTP = re.compile(r"HTTP(?:/\d(?:\.\d)?)?[ \t]+[45]\d\d\b")
_STATUS = re.compile(r"([45]\d\d)[ \t]+")
_PHRASES = {status.value: status.phrase.lower() for status in HTTPStatus if status.value >= 400}


def reports_error(content: str) -> bool:
    """Whether a tool result's text is one of the failure shapes above."""
    text = content.lstrip()
    if _LABEL.match(text) or _HTTP.match(text) or _TRACEBACK.search(text):
        return True
    if _status_line(text):
        return True
    return text.startswith("{") and '"error"' in text and _json_error(text)


def _status_line(text: str) -> bool:
    """A 4xx/5xx code followed by its own phrase as a whole ("404 Not Found")."""
    status = _STATUS.match(text)
    phrase = _PHRASES.get(int(status[1])) if status else None
    if not status or not phrase:
        return False
    rest = text[status.end() :]
    return rest.lower().startswith(phrase) and not rest[len(phrase) : len(phrase) + 1].isalpha()


def _json_error(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("error") not in (None, False, "", [], {})
