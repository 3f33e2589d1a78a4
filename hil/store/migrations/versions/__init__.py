"""One module per schema version of the store (``docs/schema.md``)."""
