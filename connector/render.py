"""A sync's outcome as tables for people: segments, the plan by rule, the run's counts.

Shared by `repeat-sales sync` and `demo`; JSON for machines is `SyncReport.to_json`.
"""

from __future__ import annotations

from collections import Counter

from connector.tables import table


def render_segments(evaluation) -> list[str]:
    """RFM segments in one table; lifecycle, value, trend and tier side by side in another."""
    # the hold-out group is drawn across the segments, not one of them: the table sums to the customers
    named = {k: v for k, v in evaluation.segments.items() if ":" not in k and k != "holdout"}
    out = [table(["segment", "customers"], sorted(named.items(), key=lambda kv: -kv[1]), title="\nSegments")]
    if evaluation.segments.get("holdout"):
        out.append(f"hold-out group (inside the segments, no touches): {evaluation.segments['holdout']}")
    dims: dict[str, list[tuple[str, int]]] = {}
    for key, count in evaluation.segments.items():
        if ":" in key:
            dim, _, value = key.partition(":")
            dims.setdefault(dim, []).append((value, count))
    rows = [(dim, value, count) for dim in ("lifecycle", "value", "trend", "tier") if dim in dims
            for value, count in sorted(dims[dim], key=lambda vc: -vc[1])]
    out.append(table(["dimension", "value", "customers"], rows, title="\nCustomers by dimension"))
    return out


def render_run(stats: dict, *, dry_run: bool) -> str:
    pulled = stats.get("pulled", {})
    rows = [("pull", pulled.get("mode", "")), ("customers pulled", pulled.get("customers", 0)),
            ("purchases pulled", pulled.get("purchases", 0)), ("HTTP requests (pull)", pulled.get("requests", 0)),
            ("HTTP requests (all)", stats.get("requests", 0)), ("actions planned", stats.get("planned", 0)),
            ("already applied", stats.get("skipped", 0))]
    if stats.get("deferred"):
        rows.append(("deferred to their day", stats["deferred"]))
    rows += [("would write", stats.get("would_write", 0))] if dry_run else [
        ("written", stats.get("written", 0)), ("failed", stats.get("failed", 0))]
    rows += [(f"  of them {kind}", n) for kind, n in (stats.get("written_by_kind") or {}).items()]
    # touches that passed over a channel, and why (e.g. email:no_mailbox: the portal has no mailbox)
    rows += [(f"  passed over {why.replace(':', ' (', 1)})", n) for why, n in (stats.get("channel_fallbacks") or {}).items()]
    # rules the CRM's data can never satisfy, in the playbook's language, with the setting that fixes it
    notes = "".join(f"\n! {note['message']}" for note in stats.get("rules_cannot_run") or [])
    notes += "".join(f"\n! {gap['message']}" for gap in stats.get("rights_missing") or [])  # what this webhook may not
    notes += "".join(f"\n! {note['message']}" for note in stats.get("crm_notices") or [])  # e.g. amoCRM's Customers mode
    return table(["run", "value"], rows, title="\nRun") + notes


def render_sync(report, *, dry_run: bool, brief: bool = False) -> str:
    ev, stats = report.evaluation, report.stats
    out = [f"As of {ev.as_of.isoformat()}: {len(ev.customers)} customers with purchases"]
    if not brief:
        out += render_segments(ev)
        by_rule = Counter((a.rule, a.kind.value) for a in report.plan)
        out.append(table(["rule", "kind", "actions"], [(r, k, n) for (r, k), n in sorted(by_rule.items())],
                         title="\nPlanned actions by rule"))
    if dry_run:
        shown = report.plan[:20]
        out.append(table(["due", "customer", "rule", "step", "title"],
                         [(a.due.isoformat(), a.customer_id, a.rule, a.step, a.title[:60]) for a in shown],
                         title=f"\nPlan preview (first {len(shown)} of {len(report.plan)})"))
    out.append(render_run(stats, dry_run=dry_run))
    for key, reason in sorted(report.failed.items())[:20]:
        out.append(f"  failed {key}: {reason}")
    return "\n".join(out)
