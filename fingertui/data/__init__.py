"""The dataset: the workspace's folders, the SQLite store, importing, exporting, checking and capturing samples. Knows no model."""
