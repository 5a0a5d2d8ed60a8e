"""The ingest stage: gateway messages in, judged readings and rejections out to the store."""
