"""Judge modes: one object per mode says what it adds to the search and the evaluations (see
``base``); presrm.search.judges registers them by name."""
