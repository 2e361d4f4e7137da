"""Importing an author's code (agent classes, tool modules) by name."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from stella_services.runtime.lifecycle import ConfigurationError


class LoadError(ConfigurationError, ImportError):
    """The author's code named in the settings cannot be imported."""


def extend_path(agent_path: str) -> None:
    """Put the author's project folders (``os.pathsep``-separated) first on ``sys.path``."""
    for folder in reversed([p for p in agent_path.split(os.pathsep) if p]):
        absolute = os.path.abspath(folder)
        if absolute not in sys.path:
            sys.path.insert(0, absolute)


def import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise LoadError(f"cannot import {name!r}: {exc} (is STELLA_AGENT_PATH right?)") from exc


def load_object(spec: str) -> object:
    """``package.module:Name`` → the object."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise LoadError(f"{spec!r} is not 'module:Name' (e.g. src.agent:MyCustomAgent)")
    module = import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise LoadError(f"{module_name!r} has no {attr!r}") from None
