"""The operators' view: the HTTP API, the Twilio webhooks and the web page, one FastAPI app.

``hydro run`` serves it beside ingest and alerting; ``hydro api`` serves it alone. Everything it
reads comes from the database and the registry, so any number of API processes agree.
"""

from hydro.api.calls import KeyPress, press_key, report_call_status
from hydro.api.context import ApiContext
from hydro.api.server import (
    TWILIO_CALL_STATUS_PATH,
    TWILIO_GATHER_PATH,
    TWILIO_STATUS_PATH,
    create_api,
    listen,
    serve,
)

__all__ = [
    "TWILIO_CALL_STATUS_PATH",
    "TWILIO_GATHER_PATH",
    "TWILIO_STATUS_PATH",
    "ApiContext",
    "KeyPress",
    "create_api",
    "listen",
    "press_key",
    "report_call_status",
    "serve",
]
