"""``python -m lbauto.agent serve --config FILE``."""

from lbauto.agent.cli import app

app(prog_name="lbauto agent")
