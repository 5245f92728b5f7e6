"""Settings from flags and DW_* environment: precedence, defaults and clear refusals."""

from __future__ import annotations

import pytest

from durable_workflow_server.cli import main
from durable_workflow_server.config import OPTIONS, ConfigError, Settings


def test_defaults_are_local_development() -> None:
    settings = Settings.from_sources({}, {})
    assert (settings.host, settings.port, settings.db, settings.auth) == (
        "127.0.0.1",
        8080,
        "durable-workflow.db",
        "none",
    )
    assert settings.max_payload_bytes == 2 * 1024 * 1024
    assert settings.log_level == "info"


def test_flag_beats_environment_beats_default() -> None:
    env = {"DW_PORT": "9000", "DW_HOST": "0.0.0.0", "DW_LOG_LEVEL": "DEBUG"}
    settings = Settings.from_sources({"port": "9100"}, env)
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.log_level == "debug"


def test_token_auth_from_environment() -> None:
    env = {"DW_AUTH": "token", "DW_WORKER_TOKEN": "w", "DW_OPERATOR_TOKEN": "o", "DW_ADMIN_TOKEN": "a"}
    settings = Settings.from_sources({}, env)
    assert settings.auth == "token"
    assert (settings.worker_token, settings.operator_token, settings.admin_token) == ("w", "o", "a")


def test_token_auth_without_any_token_is_refused_with_the_variables_named() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_sources({"auth": "token"}, {})
    message = str(caught.value)
    assert "DW_WORKER_TOKEN" in message and "DW_AUTH_TOKEN" in message


def test_blank_token_variable_is_not_a_credential() -> None:
    with pytest.raises(ConfigError):
        Settings.from_sources({}, {"DW_AUTH": "token", "DW_WORKER_TOKEN": "   "})


def test_legacy_token_alone_is_enough() -> None:
    settings = Settings.from_sources({"auth": "token", "auth_token": "legacy"}, {})
    assert settings.auth_token == "legacy" and not settings.has_role_tokens


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("port", "http", "--port/DW_PORT"),
        ("port", "70000", "--port/DW_PORT"),
        ("auth", "basic", "--auth/DW_AUTH"),
        ("max_payload_bytes", "10", "--max-payload-bytes/DW_MAX_PAYLOAD_BYTES"),
        ("log_level", "loud", "--log-level/DW_LOG_LEVEL"),
    ],
)
def test_bad_values_name_flag_and_variable(field: str, value: str, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        Settings.from_sources({field: value}, {})


def test_postgres_dsn_is_recognised_and_its_password_hidden() -> None:
    settings = Settings.from_sources({"db": "postgresql://dw:s3cret@db.local:5432/dw"}, {})
    assert settings.is_postgres
    assert "s3cret" not in settings.describe_db()
    assert Settings().describe_db() == "durable-workflow.db"


def test_every_option_has_a_flag_and_its_variable_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["server", "start", "--help"])
    start_help = capsys.readouterr().out
    for option in OPTIONS:
        assert option.flag in start_help
        assert option.env in start_help
        assert option.env.startswith("DW_")


def test_bad_settings_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["server", "start", "--auth", "token"], environ={})
    assert caught.value.code == 2
    assert "needs at least one token" in capsys.readouterr().err


def test_access_log_switch_and_variable() -> None:
    assert Settings.from_sources({}, {}).access_log is False
    assert Settings.from_sources({"access_log": "true"}, {}).access_log is True
    assert Settings.from_sources({}, {"DW_ACCESS_LOG": "yes"}).access_log is True
    with pytest.raises(ConfigError, match="DW_ACCESS_LOG"):
        Settings.from_sources({}, {"DW_ACCESS_LOG": "sometimes"})
