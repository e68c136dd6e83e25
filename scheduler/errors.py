"""The errors cronhost reports to an operator.

    CronhostError
    ├── ConfigError         config.toml is invalid (names file, job, field)
    ├── SecretError         a named secret cannot be found
    ├── StoreError          the database cannot be used
    │   └── SchemaError     the database's schema is too new or unknown
    ├── UsageError          a CLI argument is wrong (unknown job id, bad time)
    └── NotRunningError     the command needs the daemon, and it is not running

Every one of them is caught by the CLI and printed as one paragraph; bad input
(ConfigError, UsageError) exits with status 2, the others with status 1. None of
them ever reaches the operator as a traceback.
"""

from __future__ import annotations


class CronhostError(Exception):
    """cronhost cannot go on."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(CronhostError):
    """The configuration is invalid."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        job: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.job, self.field = file, job, field
        where = []
        if file:
            where.append(file)
        if job:
            where.append(f"job {job!r}")
        if field:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class SecretError(ConfigError):
    """A secret named in the configuration cannot be found."""


class StoreError(CronhostError):
    """The run store (database) cannot be used."""


class SchemaError(StoreError):
    """The database was written by another version of cronhost."""


class UsageError(CronhostError):
    """A command-line argument is wrong."""


class NotRunningError(CronhostError):
    """The daemon is not running."""


def first_line(exc: BaseException) -> str:
    """The first line of an error, for logs and messages.

    SQLAlchemy's messages carry the SQL, parameters and a link; a driver error is in ``orig``.
    """
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
