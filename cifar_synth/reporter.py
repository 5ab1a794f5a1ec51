"""How library code talks to the user: one `Reporter`, passed down from the command to whatever it calls.

Library functions take `reporter: Reporter | None = None` (None: a default `Reporter()`) and never print otherwise:
- `reporter.info(text)`: progress and results, on stdout; silenced by `quiet`;
- `reporter.warn(text)`: something the user should know, on stderr after "Warning:"; never silenced;
- `reporter.progress(*columns)`: a Rich progress display on stdout, disabled by `quiet`
  (for Keras `fit`: `cifar_synth.progress.RichProgress`).
Errors are not reported but raised (`UserError`); the command shows them as one line.
Texts are plain, not Rich markup, so paths with brackets print as they are.
"""

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress


class Reporter:
    """The one channel from library code to the user (see the module docstring)."""

    def __init__(self, quiet: bool = False, console: Console | None = None, err_console: Console | None = None):
        self.quiet = quiet
        self.console = console or Console()
        self.err_console = err_console or Console(stderr=True)

    def info(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False, highlight=False)

    def warn(self, text: str) -> None:
        self.err_console.print(f"[yellow]Warning:[/] {escape(text)}", highlight=False)

    def progress(self, *columns) -> Progress:
        return Progress(*columns, console=self.console, disable=self.quiet)
