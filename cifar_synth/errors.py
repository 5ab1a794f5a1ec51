"""The one exception type for problems a user can cause and fix."""


class UserError(Exception):
    """A problem with the user's input or environment: shown as a message, never a traceback."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most `limit` characters (HDF5's, Keras's and HTTP libraries' messages
    span several lines, some of them pages)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."
