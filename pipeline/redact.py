"""Secrets out of records: URLs without their user info, command lines without secret values.

Everything the pipeline writes down (``meta.json``, ids, logs, luigid's UI, MLflow parameters and
tags, batch summaries, messages) goes through these, so a ``user:password@`` in a tracking URI or a
secret passed as a flag never reaches a record. The secrets themselves belong in the environment
(``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, ``AWS_*``), an AWS profile or a ``LUIGI_CONFIG_PATH``
file outside the repository.
"""

import re
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
# user:password@ (or token@) right after a URL's scheme.
_USER_INFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
# Flags and key=value settings whose value is a secret.
_SECRET_NAME = re.compile(r"(secret|password|passwd|token|credential|private[_-]?key|access[_-]?key)", re.I)


def public_url(url: str) -> str:
    """Return ``url`` without its user info (``http://user:pw@host/x`` -> ``http://host/x``)."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def url_credentials(url: str) -> tuple[str, str] | None:
    """Return (user, password) from a URL's user info, or None when it has none."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    return unquote(parts.username), unquote(parts.password or "")


def redact_text(text: str) -> str:
    """Return ``text`` with the user info of every URL in it removed."""
    return _USER_INFO.sub(lambda match: match.group("scheme"), text)


def redact_argv(argv: list[str]) -> list[str]:
    """Return a command line with URLs' user info removed and the values of secret-named flags replaced."""
    redacted, hide_next = [], False
    for argument in argv:
        if hide_next:
            redacted.append(REDACTED)
            hide_next = False
            continue
        name, equals, value = argument.partition("=")
        if _SECRET_NAME.search(name) and equals:
            redacted.append(f"{name}={REDACTED}")
        elif argument.startswith("-") and _SECRET_NAME.search(argument):
            redacted.append(argument)
            hide_next = True
        else:
            redacted.append(redact_text(argument))
    return redacted
