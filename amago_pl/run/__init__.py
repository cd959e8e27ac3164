"""Settings, validation and the one builder of callbacks, loggers and Trainer arguments, shared by
``Experiment``, the CLI and plain scripts."""
