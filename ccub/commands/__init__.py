"""One module per `ccub` command. Each parses its arguments, calls one function of its package
and prints the outcome; what a run decides lives in the packages. `ccub.cli` assembles them.

Heavy packages (torch and friends) are imported inside the commands that need them, so
`ccub validate` starts fast on a laptop without them.
"""
