"""The canned queries as Neo4j Browser favorites, runnable with one click.

Each `cypher/*.cypher` file becomes one favorite: a Browser script that sets the query's
parameters and then runs it. The script keeps the file's header comment (the Browser names a
favorite after its first line and skips comment lines when it runs one) and adds, before the
query, the header's `:params {...}` line as a command.

Neo4j Browser reads `:params {...}` on the client (a JSON-like map), so whole numbers in it
become JavaScript numbers and reach the server as floats; `LIMIT $limit` then fails ("Must be a
non-negative integer"). `:param name => value` is evaluated by the server and keeps integers,
so every integer parameter gets such a line after `:params`. Browser runs the statements of a
script one after another (its multi-statement editor, on by default, runs `:param` commands).

`write_favorites` writes a `.zip` in the layout Browser's own favorites export uses (folder
`kb/`, one `<name>.cypher` per favorite), or a folder of `.cypher` files to pick in the
Favorites drawer's import dialog.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

from kb.errors import UserError
from kb.queries import CannedQuery, canned_queries

logger = logging.getLogger(__name__)

FOLDER = "kb"
_PARAMS_COMMENT = re.compile(r"^// (:params \{.*\})\s*$")


def params_commands(query: CannedQuery) -> list[str]:
    """The Browser commands that set the query's default parameters, integers kept integral."""
    commands = [f":params {_params_map(query)}"]
    commands += [f":param {name} => {value}" for name, value in query.defaults.items()
                 if isinstance(value, int) and not isinstance(value, bool)]
    return commands


def _params_map(query: CannedQuery) -> str:
    """The header's own `:params {...}` text, so the favorite says what the file says."""
    for line in query.text.splitlines():
        match = _PARAMS_COMMENT.match(line)
        if match:
            return match.group(1).removeprefix(":params ")
    return "{}"


def favorite_script(query: CannedQuery) -> str:
    """One favorite: the header comment, the parameter commands, the query; `;` between."""
    header, body = _split_header(query.text)
    if ";" in body:
        raise ValueError(f"{query.name}: a canned query must not contain ';' (Browser splits "
                         "scripts there)")
    title = f"// kb {query.name}: {query.summary}"
    commands = [f"{command};" for command in params_commands(query)]
    return "\n".join([title, *header[1:], *commands, body.strip() + ";"]) + "\n"


def _split_header(text: str) -> tuple[list[str], str]:
    lines = text.splitlines()
    count = 0
    while count < len(lines) and lines[count].startswith("//"):
        count += 1
    return lines[:count], "\n".join(lines[count:])


def favorites() -> dict[str, str]:
    """Every canned query's favorite script, by file name inside the `kb` folder."""
    return {f"{FOLDER}/{name}.cypher": favorite_script(query)
            for name, query in canned_queries().items()}


def write_favorites(target: str | Path) -> Path:
    """Write every favorite to `target`: a `.zip` archive, or else a folder of `.cypher` files.
    Return the path written."""
    path = Path(target)
    scripts = favorites()
    if path.suffix.lower() == ".zip":
        _write_zip(path, scripts)
    else:
        _write_folder(path, scripts)
    logger.info("%d Browser favorites written to %s", len(scripts), path)
    return path


def _write_zip(path: Path, scripts: dict[str, str]) -> None:
    if not path.parent.is_dir():
        raise UserError(f"{path.parent}: no such folder")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in scripts.items():
            archive.writestr(name, text)


def _write_folder(path: Path, scripts: dict[str, str]) -> None:
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder (name a folder, or a .zip file)")
    for name, text in scripts.items():
        out = path / Path(name).name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
