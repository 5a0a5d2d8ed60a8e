"""hydro: flood-monitoring ingestion and alerting.

Gauges publish readings over MQTT; hydro validates and stores them in TimescaleDB (or plain
PostgreSQL), evaluates water-level rules and sends SMS to each station's three responsible persons.
"""

__version__ = "0.1.0"
