"""``lbauto agent ...``: run the bundled LB agent."""

from __future__ import annotations

import gc
from pathlib import Path

import typer

from lbauto.errors import LbautoError

_INTERPRETER_GC = gc.get_threshold()  # read at import, before lbauto.cli.main tunes it

app = typer.Typer(
    help="The bundled LB agent (HTTP API + nftables data plane).", no_args_is_help=True
)


@app.callback()
def _group() -> None:
    """The bundled LB agent (HTTP API + nftables data plane)."""


@app.command()
def serve(
    config: Path | None = typer.Option(None, "--config", help="Agent config file (YAML)."),
    listen: str | None = typer.Option(None, help="Address the API binds to [127.0.0.1]."),
    port: int | None = typer.Option(None, help="API port [8080]."),
    interface: str | None = typer.Option(None, help="Server-facing interface (required)."),
    token_file: Path | None = typer.Option(None, help="File holding the bearer token."),
    token_env: str | None = typer.Option(None, help="Env variable holding the bearer token."),
    state_file: Path | None = typer.Option(None, help="Persisted desired state (JSON)."),
    flow_timeout: int | None = typer.Option(None, help="Idle seconds before a flow expires [300]."),
    tls_cert: Path | None = typer.Option(None, help="TLS certificate (PEM)."),
    tls_key: Path | None = typer.Option(None, help="TLS private key (PEM)."),
    max_body_bytes: int | None = typer.Option(
        None, help="Largest request body the API reads [1048576]; bigger ones get 413."
    ),
    insecure_no_auth: bool | None = typer.Option(
        None, "--insecure-no-auth", help="Accept requests without a token (labs only)."
    ),
) -> None:
    """Serve the agent API and program the data plane until interrupted."""
    # Imported here: the config's pydantic models cost every `lbauto` command a third of a
    # second at start-up otherwise (this group is registered by lbauto.cli).
    from lbauto.agent.config import load_config
    from lbauto.agent.server import serve as run

    # `lbauto` turns the collector off for short batch runs (lbauto.cli.tune_gc); a server
    # living for months goes back to the interpreter's own pace so its cycles are freed.
    gc.set_threshold(*_INTERPRETER_GC)
    gc.enable()
    overrides = {
        "listen": listen,
        "port": port,
        "interface": interface,
        "token_file": token_file,
        "token_env": token_env,
        "state_file": state_file,
        "flow_timeout": flow_timeout,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "insecure_no_auth": insecure_no_auth,
        "max_body_bytes": max_body_bytes,
    }
    try:
        run(load_config(config, overrides))
    except LbautoError as e:
        # one problem per line (a config may have several), each naming file and setting
        for line in str(e).splitlines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1) from None
