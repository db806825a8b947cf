"""Loading a policy file: a bad file is refused with the file, line and field named."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from services.policy import PolicyError, load_policy, parse_policy

GOOD = """\
name: test
version: "3"
approved_by: ops-lead
approved_at: "2026-11-01"
kill_switch: false
defaults:
  autonomous: 0.9
  assist: 0.55
  ambiguity_margin: 0.15
default_owner_team: support
categories:
  billing:
    owner_team: billing-ops
    autonomous: 0.95
  refunds:
    owner_team: billing-ops
rules:
  - id: vip
    description: VIP customers get a human in the loop
    when:
      - {field: ticket.customer_tier, op: in, value: [vip]}
    cap: assist
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def refusal(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return str(caught.value).replace(str(path), "policy.yaml")


def test_a_valid_file_loads_with_its_identity(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)

    loaded = load_policy(path)

    assert loaded.info.name == "test"
    assert loaded.info.version == "3"
    assert loaded.info.approved_by == "ops-lead"
    assert loaded.info.approved_at == "2026-11-01"
    assert loaded.source == str(path)
    assert loaded.policy.rules[0].id == "vip"


def test_the_content_hash_is_the_sha256_of_the_file_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)

    loaded = load_policy(path)

    assert loaded.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.info.content_hash == loaded.content_hash


def test_a_comment_change_changes_the_hash_but_not_the_policy(tmp_path: Path) -> None:
    before = parse_policy(GOOD.encode())
    after = parse_policy(("# reviewed\n" + GOOD).encode())

    assert before.content_hash != after.content_hash
    assert before.policy == after.policy


def test_a_missing_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"

    with pytest.raises(PolicyError) as caught:
        load_policy(missing)

    assert str(caught.value) == f"{missing}: cannot read the policy file: No such file or directory"


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path, "# nothing here\n") == "policy.yaml: the file is empty"


def test_malformed_yaml_is_refused_with_line_and_column(tmp_path: Path) -> None:
    broken = GOOD.replace("  assist: 0.55\n", "  assist: [0.55\n")

    message = refusal(tmp_path, broken)

    assert message.startswith("policy.yaml line 9 column 19:")
    assert "expected ',' or ']'" in message


def test_a_bad_indentation_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    broken = GOOD.replace("    autonomous: 0.95", "   autonomous: 0.95")

    assert refusal(tmp_path, broken).startswith("policy.yaml line 14 column 4: ")


def test_a_tab_used_for_indentation_is_refused_with_its_line(tmp_path: Path) -> None:
    broken = GOOD.replace("    autonomous: 0.95", "\tautonomous: 0.95")

    message = refusal(tmp_path, broken)

    assert message.startswith("policy.yaml line 14 column 1: ")
    assert "found character '\\t'" in message


def test_a_threshold_above_one_is_refused_naming_the_field_and_its_line(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("autonomous: 0.95", "autonomous: 1.5"))

    assert message == (
        "policy.yaml line 14: categories.billing.autonomous: "
        "Input should be less than or equal to 1"
    )


def test_a_wrong_type_is_refused_naming_the_field_and_its_line(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("assist: 0.55", "assist: high"))

    assert message == "policy.yaml line 8: defaults.assist: Input should be a valid number"


def test_a_quoted_number_is_not_silently_accepted_as_a_threshold(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("autonomous: 0.9\n", 'autonomous: "0.9"\n'))

    assert message == "policy.yaml line 7: defaults.autonomous: Input should be a valid number"


def test_a_kill_switch_must_be_a_real_boolean(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("kill_switch: false", 'kill_switch: "off"'))

    assert message == "policy.yaml line 5: kill_switch: Input should be a valid boolean"


def test_assist_above_autonomous_in_the_defaults_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("assist: 0.55", "assist: 0.95"))

    assert message == (
        "policy.yaml line 6: defaults: assist threshold 0.95 is above autonomous threshold 0.90"
    )


def test_a_category_assist_above_the_inherited_autonomous_is_refused_at_its_line(
    tmp_path: Path,
) -> None:
    text = GOOD.replace(
        "    owner_team: billing-ops\nrules", "    owner_team: billing-ops\n    assist: 0.92\nrules"
    )

    message = refusal(tmp_path, text)

    assert message == (
        "policy.yaml line 17: categories.refunds.assist: assist threshold 0.92 is above "
        "autonomous threshold 0.90 (counting the defaults)"
    )


def test_a_category_autonomous_below_the_inherited_assist_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("autonomous: 0.95", "autonomous: 0.5"))

    assert message.startswith("policy.yaml line 14: categories.billing.autonomous: assist")


def test_a_category_setting_both_thresholds_out_of_order_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("autonomous: 0.95", "autonomous: 0.6\n    assist: 0.7")

    assert refusal(tmp_path, text) == (
        "policy.yaml line 15: categories.billing.assist: "
        "assist threshold 0.70 is above autonomous threshold 0.60"
    )


def test_an_unknown_condition_field_is_refused_with_the_rule_id_and_line(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("field: ticket.customer_tier", "field: ticket.tier"))

    assert message.startswith(
        "policy.yaml line 21: rules.0.when.0.field: rule 'vip': unknown field 'ticket.tier'; "
        "known fields: ticket.customer_tier, "
    )


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        (
            "{field: classification.confidence, op: lt, value: '0.5'}",
            "value '0.5' is not number as classification.confidence is",
        ),
        (
            "{field: classification.language, op: in, value: [en, no]}",
            "value False is not text as classification.language is",
        ),
        (
            "{field: ticket.channel, op: is_true}",
            "is_true needs a flag field, not text",
        ),
        (
            "{field: ticket.channel, op: gt, value: 3}",
            "gt needs a number field, ticket.channel is text",
        ),
        (
            "{field: signals.pii_kinds, op: eq, value: card}",
            "signals.pii_kinds is a list: use contains",
        ),
        (
            "{field: classification.degraded, op: eq}",
            "value None is not flag as classification.degraded is",
        ),
    ],
)
def test_a_condition_that_could_never_match_as_written_is_refused(
    tmp_path: Path, condition: str, problem: str
) -> None:
    text = GOOD.replace("{field: ticket.customer_tier, op: in, value: [vip]}", condition)

    message = refusal(tmp_path, text)

    assert message.startswith("policy.yaml line 21: rules.0.when.0.field: rule 'vip': ")
    assert problem in message


def test_an_unknown_condition_operator_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("op: in,", "op: matches,"))

    assert message.startswith("policy.yaml line 21: rules.0.when.0.op: Input should be 'eq'")


def test_a_misspelled_key_is_refused_not_ignored(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("kill_switch: false", "kill_swtich: true"))

    assert message == "policy.yaml line 5: kill_swtich: Extra inputs are not permitted"


def test_a_category_without_an_owner_team_is_refused_at_its_line(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("    owner_team: billing-ops\nrules", "    {}\nrules"))

    assert message == "policy.yaml line 15: categories.refunds.owner_team: Field required"


def test_a_missing_approval_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("approved_by: ops-lead\n", ""))

    assert message == "policy.yaml line 1: approved_by: Field required"


def test_an_unquoted_numeric_version_is_refused_with_a_hint(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace('version: "3"', "version: 1.10"))

    assert message == (
        'policy.yaml line 2: version: must be text; quote it in the file, e.g. "1.1"'
    )


def test_an_unquoted_approval_date_is_recorded_as_iso_text() -> None:
    loaded = parse_policy(GOOD.replace('"2026-11-01"', "2026-11-01").encode())

    assert loaded.info.approved_at == "2026-11-01"


def test_a_duplicate_key_is_refused_rather_than_silently_replacing(tmp_path: Path) -> None:
    text = GOOD.replace("  refunds:\n", "  billing:\n")

    assert refusal(tmp_path, text) == (
        "policy.yaml line 15: duplicate key 'billing' (first at line 12)"
    )


def test_a_duplicate_rule_id_is_refused(tmp_path: Path) -> None:
    rule = GOOD[GOOD.index("  - id: vip") :]

    message = refusal(tmp_path, GOOD + rule)

    assert message == "policy.yaml line 23: rules.1.id: duplicate rule id 'vip'"


@pytest.mark.parametrize("rule_id", ["safety.degraded", "threshold.assist", "kill_switch"])
def test_a_rule_id_reserved_for_built_in_checks_is_refused(tmp_path: Path, rule_id: str) -> None:
    message = refusal(tmp_path, GOOD.replace("id: vip", f"id: {rule_id}"))

    assert message == (
        f"policy.yaml line 18: rules.0.id: rule id {rule_id!r} is reserved for built-in checks"
    )


def test_a_rule_without_conditions_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    when:\n      - {field: ticket.customer_tier, op: in, value: [vip]}\n", "    when: []\n"
    )

    message = refusal(tmp_path, text)

    assert message.startswith("policy.yaml line 20: rules.0.when: Tuple should have at least 1")


def test_an_unknown_cap_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.replace("cap: assist", "cap: review"))

    assert message == (
        "policy.yaml line 22: rules.0.cap: Input should be 'autonomous', 'assist' or 'human'"
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("autonomous: 0.95", "autonomous: 2").replace("cap: assist", "cap: x")

    lines = refusal(tmp_path, text).splitlines()

    assert [line.split(":")[0] for line in lines] == ["policy.yaml line 14", "policy.yaml line 22"]


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, "- just\n- a list\n")

    assert message.startswith("policy.yaml line 1: Input should be a valid dictionary")


def test_a_multi_document_file_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD + "---\nname: other\n")

    assert "expected a single document" in message
