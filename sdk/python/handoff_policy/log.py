"""Log lines attributed to this plugin.

Inside the sandbox they go to the host's log (bounded per evaluation);
natively, to Python's ``logging``, so tests can see them with ``caplog``.
"""

from __future__ import annotations

import logging

_host = None
_native = logging.getLogger("handoff_policy")

_LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO,
           "warn": logging.WARNING, "error": logging.ERROR}


def bind(host_module) -> None:
    """Routes log lines to the host: called by the component glue, never by a policy."""
    global _host
    _host = host_module


def _log(level: str, message: str) -> None:
    if _host is None:
        _native.log(_LEVELS[level], message)
    else:
        _host.log(getattr(_host.LogLevel, level.upper()), message)


def debug(message: str) -> None:
    _log("debug", message)


def info(message: str) -> None:
    _log("info", message)


def warn(message: str) -> None:
    _log("warn", message)


def error(message: str) -> None:
    _log("error", message)
