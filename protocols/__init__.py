"""Measurement and training procedures. They talk only to the backend interface and the store."""
