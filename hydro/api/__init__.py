"""The operators' view: the HTTP API, the Twilio status webhook and the web page, one FastAPI app.

``hydro run`` serves it beside ingest and alerting; ``hydro api`` serves it alone. Everything it
reads comes from the database and the registry, so any number of API processes agree.
"""

from hydro.api.context import ApiContext
from hydro.api.server import TWILIO_STATUS_PATH, create_api, listen, serve

__all__ = ["TWILIO_STATUS_PATH", "ApiContext", "create_api", "listen", "serve"]
