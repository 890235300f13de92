"""Training runs: the pipeline that trains, records and activates a model, the training child process and progress estimates."""
