"""The one validated configuration object.

Sources, later ones winning: the defaults below (the same values config.yaml documents), the YAML
file, then ``HYDRO_<SECTION>__<KEY>`` environment variables (``HYDRO_INGEST__BATCH_SIZE=2000``).
Secrets (passwords, tokens) come only from the environment and never appear in a repr or a log.
Unknown keys, unknown ``HYDRO_*`` variables and bad values stop start-up with a message naming the
file and line, or the variable.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from hydro.errors import ConfigError, Problem
from hydro.loading import (
    KeyPath,
    LocatedYaml,
    YamlSyntaxError,
    dotted,
    load_yaml,
    plain_message,
    validation_problems,
)
from hydro.models import StationKind, Variable

ENV_PREFIX = "HYDRO_"
CONFIG_PATH_VARIABLE = "HYDRO_CONFIG"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> object:
    """Reads "200ms", "10s", "15m", "6h", "30d" or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration like 200ms, 10s, 15m, 6h or 30d")
        amount, unit = match.groups()
        return dt.timedelta(seconds=float(amount) * _UNIT_SECONDS[unit or "s"])
    return value


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def derived_client_id(username: object, password: object) -> str:
    """hydro's MQTT client id when ``mqtt.client_id`` is not set.

    The broker keeps hydro's queued readings in a persistent session keyed by this id alone, so
    it must stay the same across restarts, and a gateway must not be able to guess it (on a broker
    that does not bind ids to accounts, whoever connects with it takes the session over). Derived
    from the broker password, the one per-install secret every hydro process already has, and
    the username, which differs per ingest process. Changing the password changes the id (the
    README's Configuration section says what that costs). Without a password there is nothing
    secret to derive from, and the broker lets anyone in anyway.
    """
    secret = password.get_secret_value() if isinstance(password, SecretStr) else password
    if not isinstance(secret, str) or not secret:
        return "hydro-ingest"
    account = username if isinstance(username, str) else ""
    digest = hmac.new(secret.encode(), f"hydro mqtt client id:{account}".encode(), "sha256")
    return f"hydro-{digest.hexdigest()[:16]}"  # 22 characters: within MQTT 3.1.1's 23


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: str = "hydro"
    shared_group: str | None = None
    client_id: str = "hydro-ingest"  # when unset: derived_client_id(), this without a password
    username: str | None = None
    password: SecretStr | None = Field(None, json_schema_extra={"secret": True})
    tls: bool = False
    ca_file: Path | None = None
    session_expiry: Duration = dt.timedelta(days=7)
    max_inflight: int = Field(1000, ge=1, le=65535)
    keepalive: int = Field(30, ge=5, le=3600)
    reconnect_min: Duration = dt.timedelta(seconds=0.5)
    reconnect_max: Duration = dt.timedelta(seconds=30)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("topic_prefix")
    @classmethod
    def _plain_topic_prefix(cls, value: str) -> str:
        if not value or any(c in value for c in "+#") or value.startswith("/"):
            raise ValueError("must be a plain topic level like 'hydro' (no +, #, leading /)")
        return value.rstrip("/")

    @model_validator(mode="before")
    @classmethod
    def _unguessable_client_id(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("client_id") is None:
            return {
                **data,
                "client_id": derived_client_id(data.get("username"), data.get("password")),
            }
        return data

    @property
    def subscription(self) -> str:
        return self._shared(f"{self.topic_prefix}/+/readings")

    @property
    def rejects_subscription(self) -> str:
        """What gateways refused before MQTT (an SL 651 frame with a bad CRC), for quarantine."""
        return self._shared(f"{self.topic_prefix}/+/rejects")

    def _shared(self, topic: str) -> str:
        return f"$share/{self.shared_group}/{topic}" if self.shared_group else topic


class DatabaseConfig(_Section):
    url: str = "postgresql://hydro@127.0.0.1:5432/hydro"
    password: SecretStr | None = Field(None, json_schema_extra={"secret": True})
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(4, ge=1)
    timescaledb: Literal["auto", "required", "off"] = "auto"
    chunk_interval: Duration = dt.timedelta(days=7)
    compress_after: Duration | None = dt.timedelta(days=30)
    retention: Duration | None = None
    connect_timeout: Duration = dt.timedelta(seconds=10)

    @field_validator("timescaledb", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted off as false.
        return "off" if value is False else value

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str) -> str:
        if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", value):
            raise ValueError("must not contain a password: set HYDRO_DATABASE__PASSWORD instead")
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseConfig:
        if self.pool_max < self.pool_min:
            raise ValueError("pool_max must be at least pool_min")
        return self


class Bounds(_Section):
    """Inclusive plausible range of one variable; values outside are quarantined."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


def _default_bounds() -> dict[Variable, Bounds]:
    # Wide enough for any gauge in China (levels are elevations, up to the Tibetan plateau),
    # narrow enough to catch sensor faults such as -9999 sentinels and 65535 overflows.
    return {
        Variable.WATER_LEVEL: Bounds(min=-100.0, max=6000.0),
        Variable.FLOW: Bounds(min=0.0, max=200_000.0),
        Variable.RAINFALL: Bounds(min=0.0, max=500.0),
        Variable.BATTERY_V: Bounds(min=0.0, max=60.0),
    }


class IngestConfig(_Section):
    journal: bool = True  # hand new readings to the alert evaluator; off only if none ever runs
    # Each batch upserts every station it holds into station_latest and every (hour, station) of
    # its rain into rainfall_hourly: a batch that spans several of a station's reports pays that
    # once (measured: PostgreSQL's CPU per reading 9.4 -> 6.2 µs from 5,000 to 20,000).
    batch_size: int = Field(20_000, ge=1, le=100_000)
    batch_interval: Duration = dt.timedelta(milliseconds=200)
    max_future: Duration = dt.timedelta(minutes=10)
    max_past: Duration = dt.timedelta(days=365)
    # A day of one station's 5-minute readings is ~30 kB: 1 MiB holds a long backlog, and a
    # message beyond it is refused before parsing, its first kilobyte kept.
    max_message_bytes: int = Field(1_048_576, ge=1024)
    # Every refused reading is a quarantine row: a bound on how many one message can make.
    max_message_readings: int = Field(20_000, ge=1)
    bounds: dict[Variable, Bounds] = Field(default_factory=_default_bounds)
    bounds_by_kind: dict[StationKind, dict[Variable, Bounds]] = Field(default_factory=dict)

    @field_validator("bounds")
    @classmethod
    def _every_variable_bounded(cls, value: dict[Variable, Bounds]) -> dict[Variable, Bounds]:
        return {**_default_bounds(), **value}

    def bounds_for(self, kind: StationKind) -> dict[Variable, Bounds]:
        return {**self.bounds, **self.bounds_by_kind.get(kind, {})}


class RegistryConfig(_Section):
    stations: Path = Path("stations")
    default_timezone: str = "Asia/Shanghai"

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class AlertingConfig(_Section):
    rules: Path = Path("alert_rules")
    interval: Duration = dt.timedelta(seconds=10)
    max_age: Duration = dt.timedelta(hours=1)
    clear_margin: float = Field(0.05, ge=0)
    clear_after: int = Field(2, ge=1)
    repeat_interval: Duration = dt.timedelta(hours=6)
    # How long a personal confirmation link (叫应, <api.public_url>/c/<code>) works after the
    # last SMS that carried it.
    link_ttl: Duration = dt.timedelta(hours=24)

    @field_validator("interval")
    @classmethod
    def _at_least_a_second(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value


class DutyOfficer(_Section):
    name: str
    phone: str

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str) -> str:
        if not re.fullmatch(r"\+[1-9]\d{6,14}", value):
            raise ValueError("must be an E.164 number like +8613800000000")
        return value


class SmsConfig(_Section):
    provider: Literal["console", "twilio"] = "console"
    # The duty desk when no duty.roster is set, or no officer of it is on duty at a moment.
    duty_officers: tuple[DutyOfficer, ...] = ()
    twilio_account_sid: SecretStr | None = Field(None, json_schema_extra={"secret": True})
    twilio_auth_token: SecretStr | None = Field(None, json_schema_extra={"secret": True})
    twilio_from: SecretStr | None = Field(None, json_schema_extra={"secret": True})
    twilio_base_url: str | None = None  # a Twilio-compatible endpoint instead of api.twilio.com
    concurrency: int = Field(4, ge=1, le=100)
    rate_per_second: float = Field(10.0, gt=0)
    max_attempts: int = Field(6, ge=1)
    retry_first: Duration = dt.timedelta(seconds=2)
    retry_max: Duration = dt.timedelta(minutes=5)
    # The longest a provider may take to answer one message; then it is retried like a 5xx.
    provider_timeout: Duration = dt.timedelta(seconds=10)
    # How long a claimed outbox row stays with its sender before another process may send it:
    # the sender renews it when less than twice provider_timeout is left at the call.
    claim_lease: Duration = dt.timedelta(seconds=30)
    # The duty desk's manual SMS (hydro sms send, POST /api/v1/sms/send, the 短信发送 panel):
    # put before every manual message; a send to more people needs a second confirmation; the
    # longest text one person may receive, signature included (500: eight UCS-2 segments).
    signature: str = Field("【防汛】", max_length=20)
    confirm_above: int = Field(50, ge=0)
    max_length: int = Field(500, ge=1, le=1600)
    # Saved recipient groups a manual SMS may name: group name -> its members.
    groups: dict[str, tuple[DutyOfficer, ...]] = Field(default_factory=dict)

    @field_validator("groups")
    @classmethod
    def _named_and_not_empty(
        cls, groups: dict[str, tuple[DutyOfficer, ...]]
    ) -> dict[str, tuple[DutyOfficer, ...]]:
        for name, members in groups.items():
            if not name.strip():
                raise ValueError("a group needs a name")
            if not members:
                raise ValueError(f"group {name!r} has no members")
        return groups

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> SmsConfig:
        if self.provider_timeout <= dt.timedelta(0):
            raise ValueError("provider_timeout must be positive")
        if self.claim_lease < 2 * self.provider_timeout:
            raise ValueError(
                "claim_lease must be at least twice provider_timeout: a row must not be taken"
                " over while its sender may still be waiting for the provider"
            )
        return self

    @model_validator(mode="after")
    def _twilio_credentials(self) -> SmsConfig:
        if self.provider == "twilio":
            missing = [
                env_name(("sms", name))
                for name in ("twilio_account_sid", "twilio_auth_token", "twilio_from")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"provider twilio needs {', '.join(missing)} in the environment")
        return self


class DutyConfig(_Section):
    """The duty desk: who is told what nobody else could be, and gets the daily digest."""

    # The duty roster (值班表) CSV, format in hydro/duty.py and README; None: sms.duty_officers.
    roster: Path | None = None


class VoiceConfig(_Section):
    """Voice calls (叫应), placed through sms.provider with its credentials and sender; retries,
    timeouts and leases as the sms section sets them."""

    # Calls started per second, at most, apart from the SMS rate: Twilio starts one call per
    # second per account unless more was bought.
    calls_per_second: float = Field(1.0, gt=0)
    language: str = "cmn-CN"  # <Say language>: Mandarin
    tts_voice: str | None = "Polly.Zhiyu"  # <Say voice>; None: the account's default for language
    # What the console provider's simulated people do (hydro demo): "first" answers the first
    # call of each alert with 1; "odd_alerts" only those of alerts with an odd id (the others
    # ring out, and their ladders climb); "none" answers no call. Unanswered calls end no-answer.
    console_answers: Literal["first", "odd_alerts", "none"] = "first"


ApiRole = Literal["viewer", "operator", "admin"]


class ApiToken(_Section):
    """One bearer token: who holds it (named in acknowledgements) and what it may do."""

    name: str
    role: ApiRole
    token: SecretStr


class ApiConfig(_Section):
    enabled: bool = True  # `hydro run` serves the API and web page; `hydro api` serves only them
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (tests, demo)
    # The address Twilio reaches this API at, e.g. https://hydro.example.org: SMS are sent with
    # a status callback to <public_url>/api/v1/twilio/status, calls with their key presses and
    # outcomes posted to .../gather and .../call-status; signatures are checked against these
    # URLs. None: no delivery receipts are asked for, and calls cannot be placed.
    public_url: str | None = None
    # NAME:ROLE:TOKEN entries, comma-separated, roles viewer|operator|admin. Environment only.
    tokens: SecretStr | None = Field(None, json_schema_extra={"secret": True})
    # Bounds on what one request may send and one response may hold: a larger request body gets
    # 413 before it is read (the Twilio webhook's own limit is 64 kB); more alerts than
    # max_csv_rows continue in the next CSV (X-Hydro-Next-Cursor); more points than
    # max_series_points in one readings range get 422.
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_csv_rows: int = Field(20_000, ge=1)
    max_series_points: int = Field(100_000, ge=1)
    # Tries of the confirmation page /c/<code> (叫应) per code and per client address in any
    # minute; more get 429.
    link_tries_per_minute: int = Field(10, ge=1)

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
            raise ValueError("must be an http(s) URL like https://hydro.example.org")
        return None if value is None else value.rstrip("/")

    @field_validator("tokens")
    @classmethod
    def _token_entries(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_tokens(value.get_secret_value())  # raises naming the bad entry
        return value

    def token_table(self) -> tuple[ApiToken, ...]:
        return () if self.tokens is None else parse_api_tokens(self.tokens.get_secret_value())


def parse_api_tokens(text: str) -> tuple[ApiToken, ...]:
    """``alice:operator:s3cret,bob:viewer:t0ken`` -> tokens; errors never echo a token."""
    tokens: list[ApiToken] = []
    for number, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), 1):
        name, role, token = [*entry.split(":", 2), "", ""][:3]
        if not name or role not in ("viewer", "operator", "admin") or len(token) < 16:
            raise ValueError(
                f"entry {number} must be NAME:ROLE:TOKEN with ROLE viewer, operator or admin "
                "and a token of at least 16 characters"
            )
        tokens.append(ApiToken(name=name, role=role, token=SecretStr(token)))
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ValueError("token names must be unique: they name who acknowledged an alert")
    return tuple(tokens)


class ReportConfig(_Section):
    daily_at: dt.time = dt.time(8, 5)  # local (registry.default_timezone): the day ended at 08:00
    digest: bool = True  # an SMS digest to whoever is on duty (duty.roster)
    wettest: int = Field(10, ge=1, le=100)  # stations listed as the wettest of the day

    @field_validator("daily_at", mode="before")
    @classmethod
    def _clock_time(cls, value: object) -> object:
        if isinstance(value, int):  # YAML 1.1 reads an unquoted 08:05 as the number 485
            raise ValueError('write the time in quotes, e.g. "08:05"')
        return value

    @field_validator("daily_at")
    @classmethod
    def _after_the_day_closes(cls, value: dt.time) -> dt.time:
        if value < dt.time(8, 0):
            raise ValueError("must be 08:00 or later: the hydrological day closes at 08:00")
        return value


class Sl651Config(_Section):
    """``hydro gateway sl651``: the TCP receiver for SL 651-2014 RTUs (MQTT side: ``mqtt``)."""

    host: str = "0.0.0.0"  # RTUs reach it over 4G/5G or fibre; limit with a firewall
    port: int = Field(6510, ge=0, le=65535)  # 0: any free port (tests, demo)
    gateway: str = "sl651"  # publishes to <mqtt.topic_prefix>/<gateway>/readings
    client_id: str = "hydro-sl651"  # its MQTT client id; unique per receiver process
    # Four hex digits every RTU must send (SL 651's password field). Environment only.
    password: SecretStr | None = Field(None, json_schema_extra={"secret": True})
    keep_online: bool = True  # answers end ESC (stay connected); false: EOT (hang up)
    idle_timeout: Duration = dt.timedelta(minutes=15)  # a silent connection is closed
    # No PUBACK by then: the RTU is not answered, and sends again.
    publish_timeout: Duration = dt.timedelta(seconds=10)

    @field_validator("gateway")
    @classmethod
    def _one_topic_level(cls, value: str) -> str:
        if not value or any(c in value for c in "/+#"):
            raise ValueError("must be one plain topic level like 'sl651'")
        return value

    @field_validator("password")
    @classmethod
    def _four_hex_digits(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[0-9A-Fa-f]{4}", value.get_secret_value()):
            raise ValueError("must be four hex digits, as SL 651 sends it")
        return value


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Config(_Section):
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    duty: DutyConfig = Field(default_factory=DutyConfig)
    voice: VoiceConfig = Field(default_factory=VoiceConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    sl651: Sl651Config = Field(default_factory=Sl651Config)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


def _secret_paths(model: type[BaseModel], prefix: KeyPath = ()) -> set[KeyPath]:
    paths: set[KeyPath] = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("secret"):
            paths.add((*prefix, name))
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= _secret_paths(annotation, (*prefix, name))
    return paths


SECRET_PATHS = frozenset(_secret_paths(Config))


def env_name(path: KeyPath) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in path)


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Builds the Config from defaults, ``path`` (if given) and the environment.

    Relative paths inside the file are read relative to the file's folder.
    """
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    located: LocatedYaml | None = None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            located = load_yaml(path)
        except YamlSyntaxError as exc:
            raise ConfigError([exc.problem]) from exc
        if located.data is None:
            data = {}
        elif isinstance(located.data, dict):
            data = located.data
        else:
            raise ConfigError([Problem(str(path), "must be a mapping of sections", 1)])
        for secret in SECRET_PATHS:
            if _lookup(data, secret) is not None:
                problems.append(
                    Problem(
                        str(path),
                        f"{'.'.join(map(str, secret))} is a secret: remove it from the file "
                        f"and set {env_name(secret)} instead",
                        located.line_of(secret),
                    )
                )
                _assign(data, secret, None)
    env_sources: dict[KeyPath, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_PATH_VARIABLE:
            continue
        key_path: KeyPath = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not _is_known_path(key_path):
            problems.append(Problem(name, "is not a hydro setting (see config.yaml for the keys)"))
            continue
        value: Any = raw if key_path in SECRET_PATHS else _parse_env_value(raw)
        _assign(data, key_path, value)
        env_sources[key_path] = name
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_explain(exc, located, env_sources))
    if problems:
        raise ConfigError(problems)
    if path is not None:
        config = _anchor_paths(config, path.parent)
    return config


def _explain(
    exc: ValidationError,
    located: LocatedYaml | None,
    env_sources: Mapping[KeyPath, str],
) -> list[Problem]:
    """Each error is blamed on the environment variable that set the key, else on the file."""
    problems = []
    from_file = validation_problems(exc, located) if located is not None else []
    for index, error in enumerate(exc.errors(include_url=False, include_input=False)):
        loc = tuple(error["loc"])
        env_var = next((v for k, v in env_sources.items() if loc[: len(k)] == k), None)
        if env_var is not None:
            problems.append(Problem(env_var, f"{dotted(loc)}: {plain_message(error)}"))
        elif from_file:
            problems.append(from_file[index])
        else:
            problems.append(Problem("defaults", f"{dotted(loc)}: {plain_message(error)}"))
    return problems


def _is_known_path(path: KeyPath) -> bool:
    model: type[BaseModel] = Config
    for depth, part in enumerate(path):
        info = model.model_fields.get(str(part))
        if info is None:
            return False
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            # A leaf or a mapping (bounds): deeper parts are checked by validation itself.
            return depth == len(path) - 1 or "dict" in str(annotation)
    return True


def _parse_env_value(raw: str) -> Any:
    """Text, left for validation to convert ('5000', 'true', '50ms'); 'null' is None; a YAML
    flow collection ('[1, 2]', '{min: 0}') is parsed. Plain YAML would turn 'off' into False."""
    text = raw.strip()
    if text in ("null", "~"):
        return None
    if text.startswith(("[", "{")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return raw
    return raw


def _lookup(data: Any, path: KeyPath) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _assign(data: dict[str, Any], path: KeyPath, value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(str(part))
        if not isinstance(child, dict):
            child = {}
            node[str(part)] = child
        node = child
    node[str(path[-1])] = value


def _anchor_paths(config: Config, base: Path) -> Config:
    """Relative paths in a file mean relative to that file, wherever hydro was started."""
    registry = config.registry
    if not registry.stations.is_absolute():
        registry = registry.model_copy(update={"stations": base / registry.stations})
    mqtt = config.mqtt
    if mqtt.ca_file is not None and not mqtt.ca_file.is_absolute():
        mqtt = mqtt.model_copy(update={"ca_file": base / mqtt.ca_file})
    alerting = config.alerting
    if not alerting.rules.is_absolute():
        alerting = alerting.model_copy(update={"rules": base / alerting.rules})
    duty = config.duty
    if duty.roster is not None and not duty.roster.is_absolute():
        duty = duty.model_copy(update={"roster": base / duty.roster})
    return config.model_copy(
        update={"registry": registry, "mqtt": mqtt, "alerting": alerting, "duty": duty}
    )


def find_config_path(
    explicit: Path | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """``--config``, else ``$HYDRO_CONFIG``, else ./config.yaml when present, else defaults only."""
    environ = os.environ if environ is None else environ
    if explicit is not None:
        return explicit
    from_env = environ.get(CONFIG_PATH_VARIABLE)
    if from_env:
        return Path(from_env)
    local = Path("config.yaml")
    return local if local.is_file() else None
