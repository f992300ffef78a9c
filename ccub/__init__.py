"""ccub: curate community image-caption data, fine-tune with SCoFT, benchmark culture."""

__version__ = "0.1.0"

# The Python API (ccub/api.py, docs/python.md), loaded on first use: `import ccub` stays light for the
# command line, which never loads pandas.
_API = ("validate", "load_report", "load_benchmark", "load_study", "ValidationResult", "BenchmarkTables",
        "StudyTables")


def __getattr__(name: str):
    if name in _API:
        from ccub import api

        return getattr(api, name)
    raise AttributeError(f"module 'ccub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
