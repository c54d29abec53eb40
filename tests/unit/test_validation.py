from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobscheduler.exceptions import InvalidJobData, InvalidSchedule, PayloadTooLarge, TenantRequired
from jobscheduler.validation import (
    check_cron,
    check_run_at,
    check_singleton_key,
    check_timezone,
    encode_data,
    encode_metadata,
    resolve_tenant,
)


def test_encode_data_rejects_non_objects():
    with pytest.raises(InvalidJobData) as err:
        encode_data([1, 2])
    assert str(err.value) == "Job data must be a JSON object (a dict), got list"


def test_encode_data_rejects_unserialisable():
    with pytest.raises(InvalidJobData) as err:
        encode_data({"when": datetime(2024, 1, 1)})
    assert str(err.value).startswith("Job data is not JSON-serialisable: Object of type datetime")


def test_encode_data_rejects_nan():
    with pytest.raises(InvalidJobData):
        encode_data({"x": float("nan")})


def test_payload_limit(settings):
    settings.JOBSCHEDULER = {"MAX_PAYLOAD_BYTES": 20}
    assert encode_data({"a": "x" * 12}) == '{"a":"xxxxxxxxxxxx"}'  # exactly 20 bytes
    with pytest.raises(PayloadTooLarge) as err:
        encode_data({"a": "x" * 13})
    assert str(err.value) == "Job payload is 21 bytes, over the limit of 20 bytes (MAX_PAYLOAD_BYTES)"


def test_tenant_required():
    with pytest.raises(TenantRequired) as err:
        resolve_tenant(None, {"x": 1})
    assert str(err.value) == 'A tenant is required: pass tenant_id=... or put "tenantId" in the job data.'
    with pytest.raises(TenantRequired) as err:
        resolve_tenant("not-a-uuid", {})
    assert str(err.value) == "tenant_id must be a UUID, got 'not-a-uuid'"


def test_tenant_from_data():
    t = "4f1c3c52-2b0f-4b7e-9a53-0a6a0f3f8f11"
    assert str(resolve_tenant(None, {"tenantId": t})) == t


def test_naive_datetime_rejected():
    with pytest.raises(InvalidSchedule) as err:
        check_run_at(datetime(2030, 1, 1))
    assert str(err.value) == "run_at must be timezone-aware (a naive datetime is ambiguous)"
    aware = datetime(2030, 1, 1, tzinfo=UTC)
    assert check_run_at(aware) is aware


@pytest.mark.parametrize("spec", ["0 0 * * *", "*/5 * * * *", "30 */2 * * * *"])
def test_valid_cron(spec):
    assert check_cron(spec) == spec


def test_invalid_cron_messages():
    with pytest.raises(InvalidSchedule) as err:
        check_cron("61 * * * *")
    assert str(err.value).startswith("Invalid cron expression: '61 * * * *'")
    with pytest.raises(InvalidSchedule) as err:
        check_cron("* * *")
    assert str(err.value) == "Invalid cron expression: '* * *' (expected 5 fields, or 6 with seconds first)"
    with pytest.raises(InvalidSchedule):
        check_cron(timedelta(seconds=0))


def test_invalid_timezone():
    with pytest.raises(InvalidSchedule) as err:
        check_timezone("Mars/Olympus")
    assert str(err.value) == "Invalid timezone: 'Mars/Olympus'"


def test_lone_surrogate_is_refused_in_values_and_keys():
    cases = [
        ({"x": "\ud800"}, "D800"),
        ({"ok": ["fine", {"\udfff key": 1}]}, "DFFF"),
        ({"x": "\ud83d\ude00\ude00"}, "DE00"),  # a pair, then a low surrogate left over
        ({"x": "\ud83dx"}, "D83D"),  # a high surrogate not followed by a low one
    ]
    for data, code in cases:
        with pytest.raises(InvalidJobData) as err:
            encode_data(data)
        assert str(err.value) == (
            f"Job data contains a lone surrogate U+{code} (half of a UTF-16 pair), which PostgreSQL cannot store"
        )


def test_non_ascii_and_surrogate_pairs_are_kept_and_sized_as_escaped_json(settings):
    """A surrogate pair escapes exactly like the character it stands for, which PostgreSQL stores; the size
    is the compact, ASCII-escaped JSON text, as it has always been measured."""
    assert encode_data({"a": "é😀"}) == encode_data({"a": "é\ud83d\ude00"}) == '{"a":"\\u00e9\\ud83d\\ude00"}'
    settings.JOBSCHEDULER = {"MAX_PAYLOAD_BYTES": 26}
    assert len(encode_data({"a": "é😀"})) == 26  # 8 + 6 + 12
    with pytest.raises(PayloadTooLarge) as err:
        encode_data({"a": "éé😀"})
    assert str(err.value) == "Job payload is 32 bytes, over the limit of 26 bytes (MAX_PAYLOAD_BYTES)"


def test_nul_is_refused_but_an_escaped_backslash_before_u0000_is_text():
    for data in ({"x": "a\x00b"}, {"x\x00": 1}, {"x": "\\\x00"}):
        with pytest.raises(InvalidJobData) as err:
            encode_data(data)
        assert str(err.value) == "Job data contains a NUL character, which PostgreSQL JSONB cannot store"
    assert encode_data({"x": "\\u0000"}) == '{"x":"\\\\u0000"}'
    assert encode_data({"x": "\\\\u0000"}) == '{"x":"\\\\\\\\u0000"}'


def test_metadata_and_singleton_key_are_checked_like_the_data():
    with pytest.raises(InvalidJobData) as err:
        encode_metadata({"note": "\ud83d"})
    assert str(err.value) == (
        "metadata contains a lone surrogate U+D83D (half of a UTF-16 pair), which PostgreSQL cannot store"
    )
    with pytest.raises(InvalidJobData) as err:
        encode_metadata({"note": "a\x00"})
    assert str(err.value) == "metadata contains a NUL character, which PostgreSQL JSONB cannot store"
    with pytest.raises(InvalidJobData) as err:
        check_singleton_key("sync-\udc80")
    assert str(err.value) == (
        "singleton_key contains the surrogate code point U+DC80, which is not Unicode text and PostgreSQL "
        "cannot store"
    )
    with pytest.raises(InvalidJobData) as err:
        check_singleton_key("sync\x00")
    assert str(err.value) == "singleton_key contains a NUL character, which PostgreSQL cannot store"
    with pytest.raises(InvalidJobData) as err:  # a text column takes UTF-8: not even a pair
        check_singleton_key("sync-\ud83d\ude00")
    assert str(err.value) == (
        "singleton_key contains the surrogate code point U+D83D, which is not Unicode text and PostgreSQL "
        "cannot store"
    )


DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"


def test_single_tenant_site_puts_work_without_a_tenant_in_the_default_tenant(settings):
    settings.JOBSCHEDULER = {"REQUIRE_TENANT": False}
    assert str(resolve_tenant(None, {"x": 1})) == DEFAULT_TENANT
    assert str(resolve_tenant("", None)) == DEFAULT_TENANT
    t = "4f1c3c52-2b0f-4b7e-9a53-0a6a0f3f8f11"
    assert str(resolve_tenant(None, {"tenantId": t})) == t  # a named tenant still wins
    with pytest.raises(TenantRequired) as err:
        resolve_tenant("not-a-uuid", {})
    assert str(err.value) == "tenant_id must be a UUID, got 'not-a-uuid'"


def test_default_tenant_is_a_setting(settings):
    settings.JOBSCHEDULER = {"DEFAULT_TENANT": "4f1c3c52-2b0f-4b7e-9a53-0a6a0f3f8f11"}
    assert str(resolve_tenant(None, {})) == "4f1c3c52-2b0f-4b7e-9a53-0a6a0f3f8f11"
    settings.JOBSCHEDULER = {"DEFAULT_TENANT": "main"}
    with pytest.raises(ImproperlyConfigured) as err:
        resolve_tenant(None, {})
    assert str(err.value) == "JOBSCHEDULER[\"DEFAULT_TENANT\"] must be a UUID, got 'main'"


def test_default_mode_is_what_a_site_without_settings_gets(settings):
    del settings.JOBSCHEDULER
    assert str(resolve_tenant(None, {})) == DEFAULT_TENANT
