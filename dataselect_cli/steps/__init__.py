"""One module per command, each read → validate → core → write: ``embed``, ``cluster``, ``score``,
``sample``, ``estimate``, ``apply`` (``evaluate`` lives in :mod:`dataselect_cli.evaluate`)."""
