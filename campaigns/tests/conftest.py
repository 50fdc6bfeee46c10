"""The PNM pipeline's fixtures (simulated modems, the receiver, beat, a worker), shared."""

from captures.tests.conftest import beat, farm, pnm_worker, receiver  # noqa: F401
