"""``edgecv bench --on DEVICE``: the same bench, run on other machines (ssh) or another Python
environment of this one, its rows merged into one report with each device's machine record.

- :mod:`.devices`: what ``--on`` accepts (``local``, ``local:PYTHON``, ``ssh://user@host:port``);
- :mod:`.ssh`: the command line that runs a step on a device and what its failures mean;
- :mod:`.probe`: a stdlib-only script run on the device first (Python, edgecv, runtimes, disk);
- :mod:`.agent`: the device side (``python -m edgecv.benchmarks.remote.agent``): receive files
  into a cache keyed by SHA-256, run the bench, clean up whatever happens;
- :mod:`.answers`: what a device sends back, capped and checked against the report's schema
  before any of it is used (its paths never are: rows name this machine's files);
- :mod:`.fleet`: every device in parallel, one report.
"""

from edgecv.benchmarks.remote.devices import Device, parse_devices
from edgecv.benchmarks.remote.fleet import bench_on_devices

__all__ = ["Device", "bench_on_devices", "parse_devices"]
