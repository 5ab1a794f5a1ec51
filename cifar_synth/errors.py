"""The one exception type for problems a user can cause and fix."""


class UserError(Exception):
    """A problem with the user's input or environment: shown as a message, never a traceback."""
