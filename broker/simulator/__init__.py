"""A local HTTP server that behaves like the OpenAI API, with scriptable faults and latency.

Used by the demo, the tests and the benchmarks so nothing ever calls a real provider.
"""

from broker.simulator.server import RunningSimulator, Simulator, run, start
from broker.simulator.settings import LatencyDistribution, SimSettings

__all__ = ["LatencyDistribution", "RunningSimulator", "SimSettings", "Simulator", "run", "start"]
