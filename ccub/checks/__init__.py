"""Checks, one module per family, each family one class behind `CheckFamily`."""
