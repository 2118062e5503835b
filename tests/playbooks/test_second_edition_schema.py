"""Bad second-edition playbook keys are named with their key path and line, and the fix."""

from __future__ import annotations

import pytest

from connector.errors import PlaybookError
from playbooks import load_playbook

BAD = [
    ('[metrics]\nmargins = { printers = 0.1 }\n', "metrics.margin", "margins"),
    ('[[metrics.spend]]\nmonth = "2026-13"\namount = 100\n', "metrics.spend[0].month", "YYYY-MM"),
    ('[[metrics.spend]]\nmonth = "2026-01"\namount = 1\n[[metrics.spend]]\nmonth = "2026-01"\namount = 2\n',
     "metrics.spend[1].month", "twice"),
    ('[rules.referral]\nmin_tier = "platinum"\n', "rules.referral.min_tier", "bronze, silver, gold"),
    ('[[segments.conditions]]\nname = "loyal"\n', "segments.conditions[0].name", "own"),
    ('[[segments.conditions]]\nname = "x"\ntiers = ["platinum"]\n', "segments.conditions[0].tiers[0]", "silver"),
    ('[[segments.conditions]]\nname = "x"\nlifecycles = ["dormant"]\n', "segments.conditions[0].lifecycles[0]",
     "sleeping"),
    ('[rules.birthday]\nsegments = ["printer_owners"]\n', "rules.birthday.segments[0]", "allowed"),
    ('[rules.nps]\nanswer_within_days = 0\n', "rules.nps.answer_within_days", "1"),
]


@pytest.mark.parametrize("text, path, hint", BAD, ids=[b[1] for b in BAD])
def test_a_bad_key_is_named_with_its_line_and_the_fix(tmp_path, text, path, hint):
    file = tmp_path / "pb.toml"
    file.write_text('extends = "default"\n' + text, encoding="utf-8")
    with pytest.raises(PlaybookError) as err:
        load_playbook(file)
    message = str(err.value)
    assert path in message and hint in message, message
    assert message.startswith("pb.toml:") and err.value.line is not None, message


def test_a_condition_segment_can_be_named_by_a_rules_filter(tmp_path):
    file = tmp_path / "pb.toml"
    file.write_text('extends = "default"\n[[segments.conditions]]\nname = "printer_owners"\n'
                    'bought_categories = ["printers"]\n[rules.birthday]\nsegments = ["printer_owners"]\n',
                    encoding="utf-8")
    assert load_playbook(file).rule("birthday").segments == ["printer_owners"]
