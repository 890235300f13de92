"""Training a model: the pipeline that trains, records and activates a run and refreshes the
review queue, the training child process, and the time-left estimates."""
