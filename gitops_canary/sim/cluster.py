"""The whole simulated cluster in one object: store, API server, applier, workloads, traffic.

``SimCluster`` wires the simulator's parts together and owns their lifecycle. It is a simulator,
not Kubernetes: it answers the API paths gitops-canary reads, applies the config repo like Flux,
rolls Deployments out and generates traffic, and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from gitops_canary.sim.apiserver import ApiServer
from gitops_canary.sim.applier import FluxLikeApplier
from gitops_canary.sim.exporter import MetricsExporter, TrafficMetrics
from gitops_canary.sim.scenario import Scenario
from gitops_canary.sim.store import Store
from gitops_canary.sim.traffic import TrafficSimulator
from gitops_canary.sim.workloads import WorkloadController

log = logging.getLogger(__name__)


class SimCluster:
    """A simulated cluster following ``branch`` of ``repo_url``; a context manager."""

    def __init__(
        self,
        repo_url: str,
        branch: str,
        paths: Mapping[str, str],
        scenario: Scenario | None = None,
        workdir: Path | str = ".",
        *,
        applier_interval: float = 2.0,
        flux_namespace: str = "flux-system",
        token: str | None = None,
    ) -> None:
        self.scenario = scenario or Scenario()
        self.workdir = Path(workdir)
        self.store = Store()
        self.apiserver = ApiServer(self.store, token=token)
        self._token = token
        self.applier = FluxLikeApplier(
            self.store,
            repo_url,
            branch,
            paths,
            namespace=flux_namespace,
            interval=applier_interval,
            workdir=self.workdir,
        )
        self.workloads = WorkloadController(self.store, self.scenario)
        self.metrics = TrafficMetrics()
        self.exporter = MetricsExporter(self.metrics)
        self.traffic = TrafficSimulator(
            self.store, self.workloads.ready_pods, self.scenario, self.metrics
        )
        self._kubeconfig: Path | None = None
        self._started = False

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig file pointing at the simulated API server (after :meth:`start`)."""
        if self._kubeconfig is None:
            raise RuntimeError("the simulated cluster is not running; call start() first")
        return self._kubeconfig

    @property
    def api_url(self) -> str:
        return self.apiserver.url

    @property
    def exporter_url(self) -> str:
        """The metrics endpoint, ``http://127.0.0.1:<port>/metrics``."""
        return self.exporter.url + "/metrics"

    @property
    def exporter_address(self) -> str:
        """``127.0.0.1:<port>``, the form a Prometheus scrape target takes."""
        return self.exporter.address

    def start(self) -> SimCluster:
        if self._started:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._started = True
        try:
            self.apiserver.start()
            self._kubeconfig = self.apiserver.write_kubeconfig(
                self.workdir / "kubeconfig", token=self._token
            )
            self.exporter.start()
            self.workloads.start()
            self.traffic.start()
            self.applier.start()
        except BaseException:
            self.stop()
            raise
        log.info(
            "simulated cluster (a simulator, not Kubernetes): API %s, metrics %s; %s",
            self.api_url,
            self.exporter_url,
            self.scenario.describe(),
        )
        return self

    def stop(self) -> None:
        """Stop every part; safe to call more than once."""
        if not self._started:
            return
        self._started = False
        # Reverse order of start: nothing writes to a part that has already stopped.
        self.applier.stop()
        self.traffic.stop()
        self.workloads.stop()
        self.exporter.stop()
        self.apiserver.stop()

    def __enter__(self) -> SimCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
