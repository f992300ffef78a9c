"""`python -m ccub`: the command line (also what `accelerate launch -m ccub finetune ...` runs)."""

from ccub.cli import app

app(prog_name="ccub")
