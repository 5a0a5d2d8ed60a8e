"""Gateways hydro runs itself: converters from a station protocol to the MQTT gateway contract."""
