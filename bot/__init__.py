"""The edge: every framework (Telegram, FastAPI, APScheduler) and the wiring of the parts."""
