"""``durafn keys``: show the host keys, creating the keys file the first time."""

from __future__ import annotations

import click
from rich.text import Text

from durafn.cli import render
from durafn.cli.common import CliError
from durafn.host.keys import HostKeys, KeysFileError, keys_file

# What each key opens, as `durafn start` checks them.
KEY_SCOPES = {
    "default": "HTTP functions with auth level 'function'",
    "durabletask": "the management API (/runtime/webhooks/durabletask); status URLs carry it",
    "master": "everything",
}

KEY_COLUMNS: list[render.Column[tuple[str, str, str]]] = [
    render.Column("key", lambda row: row[0]),
    render.Column("value", lambda row: Text(row[1])),
    render.Column("grants", lambda row: row[2]),
]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the keys and the file as JSON.")
def keys(as_json: bool) -> None:
    """Show the host keys that `durafn start` requires off loopback.

    The keys live in $DURAFN_KEYS_FILE (default .durafn/keys.json in the working directory);
    the file is created, readable by its owner only, the first time. Pass a key as ?code=KEY
    or in an x-functions-key header. Delete the file to rotate every key.
    """
    path = keys_file()
    existed = path.exists()
    try:
        host_keys = HostKeys.load_or_create(path)
    except KeysFileError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot read or create the keys file {path}: {exc}") from None
    values = {name: getattr(host_keys, name) for name in KEY_SCOPES}
    if as_json:
        document = {"file": str(path.resolve()), "created": not existed, "keys": values}
        render.echo_json(document)
        return
    verb = "Created" if not existed else "Keys from"
    render.note(f"{verb} {path.resolve()}")
    rows = [(name, value, KEY_SCOPES[name]) for name, value in values.items()]
    render.print_table(render.stdout_console(), KEY_COLUMNS, rows, optional=("grants",))
