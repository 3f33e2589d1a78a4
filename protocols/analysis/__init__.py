"""Analysis of stored runs (the store only, no backend): extraction of device parameters,
fitting, twin presets fitted from measured runs, HTML reports."""
