"""`ccub fetch`: turn a URL manifest into an imagefolder submission that `ccub validate` reads.

Standard library only (plus Pillow), so importing it keeps `ccub validate` light.
"""

from ccub.fetch.manifest import ManifestError, Problem, Row, read_manifest
from ccub.fetch.run import FetchResult, Outcome, run_fetch, user_agent

__all__ = ["FetchResult", "ManifestError", "Outcome", "Problem", "Row", "read_manifest", "run_fetch",
           "user_agent"]
