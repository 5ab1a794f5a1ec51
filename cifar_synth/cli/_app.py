"""The Typer app every command registers on, the user's `Reporter`, and the wrapper that turns user errors into
clean exits."""

import functools
import os
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cifar_synth.errors import UserError
from cifar_synth.reporter import Reporter
from cifar_synth.tensorflow_startup import VERBOSE_VARIABLE

app = typer.Typer(
    name="cifar-synth",
    help="Labeled synthetic datasets of 32×32 images (CIFAR-10, CIFAR-100, any class-folder tree) from per-class "
         "DCGANs, and an honest measure of their worth.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def reporter(quiet: bool = False) -> Reporter:
    """The channel a command hands to library code: messages and progress on stdout, warnings on stderr."""
    return Reporter(quiet, console, err_console)


def _print_version(value: bool) -> None:
    if value:
        from cifar_synth import __version__

        typer.echo(f"cifar-synth {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help=f"Show TensorFlow's own log on stderr (or set "
                                          f"{VERBOSE_VARIABLE}=1).")] = False,
) -> None:
    """Labeled synthetic CIFAR-10 datasets from per-class DCGANs, and an honest measure of their worth."""
    if verbose:
        # In the environment, so worker processes see it too; TensorFlow is imported later, inside the command.
        os.environ[VERBOSE_VARIABLE] = "1"


def user_errors_exit(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show a `UserError` as one red line and exit 1; Ctrl-C exits 130 without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            err_console.print(f"[bold red]Error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]Interrupted.[/]")
            raise typer.Exit(130) from None

    return wrapper
