"""Domain exceptions shared by training, the registry, the log and serving.

Each carries a stable machine-readable ``code``; the HTTP layer and the CLI map
these to status codes / exit codes in one place each.
"""

from __future__ import annotations

from typing import Any


class MlsysError(Exception):
    """Base class for errors that are reported to a user, never as a traceback."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(MlsysError):
    """A setting, URI or option is invalid."""

    code = "invalid_config"


class UnknownModelError(ConfigError):
    """A model name that neither the registry nor the system log knows (a typo would
    otherwise read as a model with no traffic); ``details["models"]`` lists the known
    names. The CLI exits 2, the HTTP API answers 404."""

    code = "model_not_found"


class DataError(MlsysError):
    """Training data is missing, unreadable or unusable for the task."""

    code = "invalid_data"


class RegistryError(MlsysError):
    """The model registry could not be read or written."""

    code = "registry_error"


class VersionNotFoundError(RegistryError):
    """A model version (or the champion) does not exist."""

    code = "version_not_found"


class NoChampionError(VersionNotFoundError):
    """The registry has no champion yet."""

    code = "no_champion"


class ConcurrentUpdateError(RegistryError):
    """The champion pointer changed between read and write (compare-and-swap lost)."""

    code = "concurrent_update"


class ValidationError(MlsysError):
    """A request or record does not match the model's feature schema."""

    code = "invalid_input"
