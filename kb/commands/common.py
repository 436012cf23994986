"""What every `kb` command shares: consoles, exit codes, options, error reporting, opening."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kb.errors import KbError, UserError
from kb.graph.backend import Backend
from kb.queries import DEFAULT_DB, open_kb

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USER_ERROR = 2

# Messages naming a path are printed with soft_wrap: a path cut across two lines cannot be
# copied. Errors are all messages.
console = Console()
errors = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


class DataFormat(StrEnum):
    text = "text"
    json = "json"


DbOption = Annotated[Path, typer.Option("--db", help="LadybugDB knowledge base file.",
                                        envvar="KB_DB")]
Neo4jOption = Annotated[str, typer.Option(
    "--neo4j", help="Neo4j Bolt URI (instead of --db); credentials from KB_NEO4J_USER / "
    "KB_NEO4J_PASSWORD.", envvar="KB_NEO4J_URI", show_default=False)]
DEFAULT_DB_PATH = Path(DEFAULT_DB)


@contextmanager
def reported_errors() -> Iterator[None]:
    """User mistakes print one line and exit 2; other known failures exit 1."""
    try:
        yield
    except UserError as error:
        typer.echo(f"kb: error: {error}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except KbError as error:
        typer.echo(f"kb: failed: {error}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    except OSError as error:  # a path the user gave that cannot be written or read
        place = f"{error.filename}: " if error.filename else ""
        typer.echo(f"kb: error: {place}{error.strerror or error}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


@contextmanager
def opened(db: Path, neo4j: str, read_only: bool = True) -> Iterator[Backend]:
    """The knowledge base the options name, closed afterwards."""
    backend = open_kb(db, neo4j or None, read_only=read_only)
    try:
        yield backend
    finally:
        backend.close()
