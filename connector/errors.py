"""One error hierarchy, grouped by what the caller should do; str() never holds a secret."""

from __future__ import annotations


class RepeatSalesError(Exception):
    """Base class. `hint` says the fix in words; `exit_code` is the CLI's exit status."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# --- bad input: exit 2 ---------------------------------------------------------------


class InputError(RepeatSalesError):
    exit_code = 2


class SettingsError(InputError):
    """A setting is missing or malformed; `env_name` is the variable to fix."""

    def __init__(self, env_name: str, message: str, *, hint: str = "") -> None:
        super().__init__(f"{env_name}: {message}", hint=hint)
        self.env_name = env_name


class PlaybookError(InputError):
    """A playbook is malformed; `key_path` (e.g. `rules.calendar.steps[2].day`) and `line` locate it."""

    def __init__(self, key_path: str, message: str, *, hint: str = "", line: int | None = None,
                 source: str = "") -> None:
        where = f"{source}:" if source else ""
        where += f"{line}: " if line else (" " if source else "")
        super().__init__(f"{where}{key_path}: {message}", hint=hint)
        self.key_path = key_path
        self.line = line


class CsvInputError(InputError):
    """A transactions CSV cannot be read; `row` is the 1-based line number in the file."""

    def __init__(self, row: int | None, column: str | None, message: str, *, hint: str = "") -> None:
        where = []
        if row is not None:
            where.append(f"line {row}")
        if column:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)
        self.row = row
        self.column = column


# --- the CRM: exit 1 -------------------------------------------------------------------


class CrmError(RepeatSalesError):
    """A CRM call failed. Carries no URL (webhook URLs are secrets) and a cut, redacted body.

    `resume_at`: set by an adapter whose pull stopped at a clean point: where the next run goes on.
    """

    retryable = False
    resume_at: dict | None = None

    def __init__(self, message: str, *, crm: str = "", method: str = "", status: int | None = None,
                 crm_code: str = "", hint: str = "") -> None:
        parts = [p for p in (crm, method) if p]
        head = " ".join(parts)
        detail = ", ".join(x for x in (f"HTTP {status}" if status else "", crm_code) if x)
        text = f"{head}: {message}" if head else message
        if detail:
            text += f" [{detail}]"
        super().__init__(text, hint=hint)
        self.crm = crm
        self.method = method
        self.status = status
        self.crm_code = crm_code


class CrmAuthError(CrmError):
    """The token or webhook was refused and cannot be refreshed."""


class CrmUnavailable(CrmError):
    retryable = True


class CrmUnreachable(CrmUnavailable):
    """No connection at all: the host name does not resolve, the port refuses, TLS fails.

    A setting (the CRM's address) or the host is wrong, so retrying within the run cannot help;
    the message names the cause and the setting, never the token.
    """

    retryable = False


class CrmRateLimited(CrmUnavailable):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class CrmRequestRejected(CrmError):
    """A 4xx or error body: bad filter, missing field, no rights."""


class CrmRecordError(CrmError):
    """One record cannot be mapped; it is skipped and counted, the run goes on."""


# --- local state: exit 1 -----------------------------------------------------------------


class StateError(RepeatSalesError):
    pass


class StateLocked(StateError):
    pass


class StateSchemaError(StateError):
    pass


class PlanRefused(RepeatSalesError):
    """A plan that would undo what the CRM holds (e.g. blank most cards) is stopped before any write."""


class StateDamaged(StateError):
    """The state file is not a readable SQLite database (cut short, overwritten, disk fault)."""


class StateReadOnly(StateError):
    """The state file or its folder refuses writes."""


class WebhookRejected(RepeatSalesError):
    """An inbound webhook call is refused; `status` is the HTTP answer. Nothing changes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
