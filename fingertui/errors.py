"""Errors a user can act on: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or a missing resource. The message says what happened and what to do."""


class Cancelled(Exception):
    """The user cancelled long work; nothing half-done was kept."""


class UnsafePath(UserError):
    """A stored path that is absolute, climbs out with ``..`` or leads (through a link)
    outside the workspace's ``data/`` folder: refused, never acted on."""
