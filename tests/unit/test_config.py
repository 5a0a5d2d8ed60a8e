"""One validated configuration: file, environment, secrets, and the errors operators see."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hydro.cli import main
from hydro.config import Config, load_config, parse_duration
from hydro.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return [str(p) for p in caught.value.problems]


def test_shipped_config_yaml_states_exactly_the_defaults() -> None:
    shipped = load_config(REPO / "config.yaml", {})
    paths = {"registry", "alerting"}
    assert shipped.model_dump(exclude=paths) == Config().model_dump(exclude=paths)
    assert shipped.registry.stations == REPO / "stations"
    assert shipped.alerting.rules == REPO / "alert_rules"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt:\n  prot: 5\n", ":2: mqtt.prot: unknown key"),
        ("mqtt:\n  port: 70000\n", ":2: mqtt.port: Input should be less than or equal to 65535"),
        ("ingest:\n  batch_interval: soon\n", ":2: ingest.batch_interval: Value error, 'soon'"),
        (
            "ingest:\n  bounds:\n    rainfall: {min: 10, max: 1}\n",
            ":3: ingest.bounds.rainfall: Value error, min 10.0 is above max 1.0",
        ),
        (
            "database:\n  password: hunter2\n",
            ":2: database.password is a secret: remove it from the file and set "
            "HYDRO_DATABASE__PASSWORD instead",
        ),
        (
            "database:\n  url: postgresql://hydro:pw@db/hydro\n",
            ":2: database.url: Value error, must not contain a password",
        ),
        ("registry:\n  default_timezone: Mars/Olympus\n", ":2: registry.default_timezone"),
        ("mqtt:\n  port: [1, 2\nlogging: {}\n", ":3: not valid YAML"),
        ("- just\n- a list\n", ":1: must be a mapping of sections"),
        ("sms:\n  groups:\n    防指: []\n", ":2: sms.groups: Value error, group '防指' has no"),
        (
            "sms:\n  groups:\n    防指:\n      - {name: 张三, phone: '138'}\n",
            ":4: sms.groups.防指.0.phone: Value error, must be an E.164 number",
        ),
        ("sms:\n  confirm_above: -1\n", ":2: sms.confirm_above"),
    ],
)
def test_file_errors_name_the_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    problems = problems_of(tmp_path, text)
    assert any(expected in problem for problem in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        "mqtt:\n  port: 0\n  colour: blue\ningest:\n  batch_size: 0\n",
        {"HYDRO_NOT_A_SETTING": "1"},
    )
    assert len(problems) == 4, problems
    assert "HYDRO_NOT_A_SETTING: is not a hydro setting" in problems[0]


def test_environment_overrides_the_file_and_carries_secrets(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("ingest:\n  batch_size: 100\n", encoding="utf-8")
    config = load_config(
        path,
        {
            "HYDRO_INGEST__BATCH_SIZE": "2000",
            "HYDRO_INGEST__BATCH_INTERVAL": "50ms",
            "HYDRO_MQTT__PASSWORD": "s3cret",
            "HYDRO_INGEST__BOUNDS_BY_KIND__RAIN": "{rainfall: {min: 0, max: 300}}",
        },
    )
    assert config.ingest.batch_size == 2000
    assert config.ingest.batch_interval == dt.timedelta(milliseconds=50)
    assert config.ingest.bounds_for("rain")["rainfall"].max == 300  # type: ignore[index]
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)


def test_yaml_1_1_booleans_and_numbers_mean_what_operators_wrote(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("database:\n  timescaledb: off\nmqtt:\n  protocol: 5\n", encoding="utf-8")
    config = load_config(path, {"HYDRO_DATABASE__RETENTION": "null"})
    assert (config.database.timescaledb, config.mqtt.protocol) == ("off", "5")
    from_env = load_config(None, {"HYDRO_DATABASE__TIMESCALEDB": "off", "HYDRO_MQTT__TLS": "true"})
    assert (from_env.database.timescaledb, from_env.mqtt.tls) == ("off", True)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"HYDRO_MQTT__PORT": "many"})
    assert str(caught.value.problems[0]).startswith("HYDRO_MQTT__PORT: mqtt.port:")


def test_relative_paths_are_read_from_the_config_files_folder(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "config.yaml"
    path.parent.mkdir()
    path.write_text("registry:\n  stations: ../registry\n", encoding="utf-8")
    assert load_config(path, {}).registry.stations == tmp_path / "etc" / ".." / "registry"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("10s", 10), ("15m", 900), ("6h", 21600), ("30d", 2_592_000), (5, 5)],
)
def test_durations(text: str | int, seconds: float) -> None:
    parsed = parse_duration(text)
    assert isinstance(parsed, dt.timedelta)
    assert parsed.total_seconds() == seconds


def test_hydro_check_prints_every_problem_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stations.csv").write_text(
        "code,name,kind,prefecture,county,lat,lon\n1,A,lake,P,C,26,106\n", encoding="utf-8"
    )
    config = tmp_path / "config.yaml"
    config.write_text("registry:\n  stations: stations.csv\n", encoding="utf-8")
    assert main(["--config", str(config), "check"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'stations.csv'}:2: station 1: unknown kind 'lake'" in err

    config.write_text("registry:\n  stationz: stations.csv\n", encoding="utf-8")
    assert main(["--config", str(config), "check"]) == 1
    assert f"{config}:2: registry.stationz: unknown key" in capsys.readouterr().err


def test_hydro_check_accepts_the_shipped_config_and_registry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--config", str(REPO / "config.yaml"), "check"]) == 0
    assert "valid" in capsys.readouterr().out


def test_the_default_client_id_is_derived_from_the_broker_password(tmp_path: Path) -> None:
    def client_id(text: str = "", **environ: str) -> str:
        path = tmp_path / "config.yaml"
        path.write_text(text or "mqtt:\n  client_id: null\n", encoding="utf-8")
        return load_config(path, environ).mqtt.client_id

    hydro = client_id(HYDRO_MQTT__USERNAME="hydro", HYDRO_MQTT__PASSWORD="s3cret")
    assert hydro.startswith("hydro-")
    assert len(hydro) == 22  # MQTT 3.1.1 servers must take 23
    assert hydro == client_id(HYDRO_MQTT__USERNAME="hydro", HYDRO_MQTT__PASSWORD="s3cret")
    assert hydro != client_id(HYDRO_MQTT__USERNAME="hydro-ingest-2", HYDRO_MQTT__PASSWORD="s3cret")
    assert hydro != client_id(HYDRO_MQTT__USERNAME="hydro", HYDRO_MQTT__PASSWORD="other")
    assert "s3cret" not in hydro
    assert client_id() == "hydro-ingest"  # no password, nothing secret to derive from
    explicit = client_id("mqtt:\n  client_id: ingest-2\n", HYDRO_MQTT__PASSWORD="s3cret")
    assert explicit == "ingest-2"
