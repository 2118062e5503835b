"""CRM-neutral playbooks: segment customers and plan actions. Pure: no HTTP, database or clock.

Public API (used by connector.sync and connector.cli):

    load_playbook(path: str | Path | None = None, *, lang: str = "ru") -> Playbook
        None loads the bundled default (`default.toml`, or `default.en.toml` for lang="en").
        A malformed file raises connector.errors.PlaybookError naming the key path and line.

    evaluate(customers: Iterable[Customer], today: date, playbook: Playbook,
             *, history: PlanHistory | None = None) -> Evaluation
        Segments every customer and returns the plan of actions due as of `today`.
        Also takes `catalogue=` (Products with cycle_days/prices) and `cac=`.

    retention_rate(customers, start, end), segment_migration(eval_a, eval_b): see README.md, "Definitions".
"""

from playbooks.api import CustomerReport, Evaluation, PlanHistory, Suppressed  # noqa: F401
from playbooks.engine import evaluate  # noqa: F401
from playbooks.metrics import retention_rate, segment_migration  # noqa: F401
from playbooks.schema import Playbook, load_playbook  # noqa: F401
