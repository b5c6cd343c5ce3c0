"""``python -m edgelens``: the CLI without its console script (a checkout run in place,
or an interpreter whose bin folder holds no ``edgelens``)."""

from edgelens.cli.main import app

app(prog_name="edgelens")
