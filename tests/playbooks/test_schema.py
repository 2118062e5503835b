"""load_playbook: both bundled playbooks load; broken files name the key path, the line and the fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from connector.errors import PlaybookError
from playbooks import load_playbook
from playbooks.rules import REGISTRY
from playbooks.schema import HERE

GOOD_HEAD = 'extends = "default"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> PlaybookError:
    with pytest.raises(PlaybookError) as info:
        load_playbook(write(tmp_path, text))
    return info.value


def test_bundled_playbooks_load_with_every_rule():
    for lang in ("ru", "en"):
        book = load_playbook(lang=lang)
        assert book.lang == lang
        assert set(book.rules) == set(REGISTRY)
        assert book.currency == "RUB"


def shape(value):
    """The structure of a TOML value: keys and array lengths, without the texts."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def test_english_playbook_has_the_same_structure_as_russian():
    ru = tomllib.loads((HERE / "default.toml").read_text(encoding="utf-8"))
    en = tomllib.loads((HERE / "default.en.toml").read_text(encoding="utf-8"))
    assert shape(en) == shape(ru)
    # the numbers and switches are the same; only texts differ
    assert en["rules"]["calendar"]["steps"][1]["day"] == ru["rules"]["calendar"]["steps"][1]["day"]
    assert en["guards"] == {**ru["guards"], "opt_out": {**ru["guards"]["opt_out"], "tags": en["guards"]["opt_out"]["tags"]}}


def test_extends_overrides_only_given_keys(tmp_path):
    book = load_playbook(write(tmp_path, GOOD_HEAD + "[rules.calendar]\nfire_within_days = 5\n"))
    assert book.rules["calendar"].fire_within_days == 5
    assert len(book.rules["calendar"].steps) == 4
    assert "reactivation" in book.rules


def test_standalone_file_has_only_its_rules(tmp_path):
    book = load_playbook(write(tmp_path, '[[rules.calendar.steps]]\nname = "thanks"\nday = 2\ntitle = "Спасибо"\n'))
    assert list(book.rules) == ["calendar"]
    assert book.segments.lifecycle.sleeping_days == 90


def test_disabled_rule_is_inactive(tmp_path):
    book = load_playbook(write(tmp_path, GOOD_HEAD + "[rules.birthday]\nenabled = false\n"))
    assert book.rule("birthday") is None


# (file text, key path, line, words in the message or hint)
BROKEN = [
    pytest.param(GOOD_HEAD + "\n[rules.calendar]\nfire_within_dayz = 3\n",
                 "rules.calendar.fire_within_dayz", 4, ["unknown key", "fire_within_days"], id="typo-key"),
    pytest.param(GOOD_HEAD + "[segments.lifecycle]\nsleeping_days = \"ninety\"\n",
                 "segments.lifecycle.sleeping_days", 3, ["expected integer"], id="wrong-type"),
    pytest.param(GOOD_HEAD + "[guards.holdout]\npercent = 150.0\n",
                 "guards.holdout.percent", 3, ["out of range", "100"], id="out-of-range"),
    pytest.param(GOOD_HEAD + "[rules.birthdays]\ndays_before = 3\n",
                 "rules.birthdays", 2, ["unknown rule kind", "birthday", "calendar"], id="unknown-rule"),
    pytest.param(GOOD_HEAD + "[rules.birthday]\ntitle = \"С днём рождения, {nmae}!\"\n",
                 "rules.birthday.title", 3, ["unknown placeholder {nmae}", "{name}"], id="unknown-placeholder"),
    pytest.param(GOOD_HEAD + "[guards.quiet]\nmode = \"skip\"\n",
                 "guards.quiet.mode", 3, ["unknown value", "shift, drop"], id="bad-choice"),
    pytest.param(GOOD_HEAD + "[guards.quiet]\nweekdays = [\"sun\", \"sunday\"]\n",
                 "guards.quiet.weekdays[1]", 3, ["unknown value", "mon"], id="bad-weekday"),
    pytest.param('[rules.calendar]\n[[rules.calendar.steps]]\nname = "a"\nday = 2\ntitle = "x"\n'
                 '[[rules.calendar.steps]]\nname = "b"\nday = -1\ntitle = "y"\n',
                 "rules.calendar.steps[1].day", 8, ["out of range"], id="array-of-tables-index"),
    pytest.param('[rules.calendar]\n[[rules.calendar.steps]]\nname = "a"\nday = 2\nkind = "workflow"\ntitle = "x"\n',
                 "rules.calendar.steps[0].template", 2, ["automation template id"], id="workflow-without-template"),
    pytest.param(GOOD_HEAD + "[segments.lifecycle]\nsleeping_days = 400\n",
                 "segments.lifecycle.lost_days", None, ["greater than sleeping_days"], id="cross-field"),
    pytest.param(GOOD_HEAD + "[rules.birthday]\nsegments = [\"champs\"]\n",
                 "rules.birthday.segments[0]", 3, ["unknown segment", "champions"], id="unknown-segment"),
    pytest.param(GOOD_HEAD + "[segments.rfm]\nrecency_edges = [30, 20, 180, 365]\n",
                 "segments.rfm.recency_edges", 3, ["ascending"], id="edges-not-ascending"),
    pytest.param(GOOD_HEAD + "[rules.holidays]\n[[rules.holidays.dates]]\nname = \"x\"\ndate = \"13-45\"\ntitle = \"t\"\n",
                 "rules.holidays.dates[0].date", 5, ["bad date", "MM-DD"], id="bad-holiday-date"),
    pytest.param(GOOD_HEAD + "[rules.calendar\nfire_within_days = 3\n",
                 "(file)", 2, ["not valid TOML"], id="toml-syntax"),
    pytest.param('extends = "defualt"\n', "extends", 1, ["unknown base", "default.en"], id="bad-extends"),
    pytest.param(GOOD_HEAD + "[rules.replenishment.categories]\n\"Кофе\" = 0\n",
                 "rules.replenishment.categories.Кофе", 3, ["out of range"], id="dict-value-range"),
    pytest.param(GOOD_HEAD + "[rules.replenishment]\nlearn_min_customers = 1\n",
                 "rules.replenishment.learn_min_customers", 3, ["out of range", "from 2"], id="too-few-customers"),
    pytest.param(GOOD_HEAD + "[rules.replenishment]\nlearn_max_spread = -0.5\n",
                 "rules.replenishment.learn_max_spread", 3, ["out of range"], id="negative-spread"),
    pytest.param(GOOD_HEAD + "[rules.replenishment.why]\nlearned = \"{clients} bought it\"\n",
                 "rules.replenishment.why.learned", 3, ["unknown placeholder {clients}", "{customers}"],
                 id="why-placeholder"),
    pytest.param('version = 1\n\n[rules.replenishment]\ntitle = "Restock {product}"\n',
                 "rules.replenishment.why.catalogue", 3, ["missing text", "why the product's cycle", "{cycle}"],
                 id="why-missing"),
    pytest.param(GOOD_HEAD + '[[rules.seasonal.offers]]\nname = "x"\nif_categories = ["a"]\nstart = "04-31"\n'
                 'end = "05-01"\ntitle = "t"\n', "rules.seasonal.offers[0].start", 5, ["bad date", "MM-DD"],
                 id="bad-season-start"),
    pytest.param(GOOD_HEAD + '[[rules.seasonal.offers]]\nname = "x"\nif_categories = ["a"]\nstart = "04-01"\n'
                 'end = "05-01"\nsegments = ["champs"]\ntitle = "t"\n', "rules.seasonal.offers[0].segments[0]", 7,
                 ["unknown segment", "champions"], id="bad-season-segment"),
    pytest.param(GOOD_HEAD + '[[rules.upsell.ladders]]\nname = "x"\ntitle = "t"\n',
                 "rules.upsell.ladders[0].products", None, ["needs its models", "categories"], id="ladder-without-models"),
    pytest.param(GOOD_HEAD + '[rules.upsell]\nmax_price_ratio = 0.5\n',
                 "rules.upsell.max_price_ratio", 3, ["out of range"], id="ratio-below-one"),
    pytest.param(GOOD_HEAD + '[[rules.promo.sales]]\nname = "x"\ndate = "11-31"\ntitle = "t"\n',
                 "rules.promo.sales[0].date", 4, ["bad date", "YYYY-MM-DD"], id="bad-sale-date"),
    pytest.param(GOOD_HEAD + '[[rules.welcome.steps]]\nname = "x"\nday = -2\ntitle = "t"\n',
                 "rules.welcome.steps[0].day", 4, ["out of range"], id="welcome-negative-day"),
    pytest.param(GOOD_HEAD + '[rules.reactivation]\nrhythm_factor = 0.5\n',
                 "rules.reactivation.rhythm_factor", 3, ["out of range"], id="rhythm-factor-below-one"),
]


@pytest.mark.parametrize("text,key_path,line,words", BROKEN)
def test_broken_playbook_names_key_path_and_line(tmp_path, text, key_path, line, words):
    err = error_of(tmp_path, text)
    assert err.key_path == key_path
    if line is not None:
        assert err.line == line
    message = str(err)
    assert ("mine.toml" in message) or line is None
    for word in words:
        assert word in message
    assert err.exit_code == 2


def test_missing_file_is_a_playbook_error(tmp_path):
    with pytest.raises(PlaybookError, match="not found"):
        load_playbook(tmp_path / "nope.toml")


def test_unknown_language_lists_allowed():
    with pytest.raises(PlaybookError, match="ru, en"):
        load_playbook(lang="de")
