"""The notify stage: SMS providers and the outbox dispatcher."""
