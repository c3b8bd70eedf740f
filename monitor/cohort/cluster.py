"""Where the cohort's tasks run: a local Dask cluster of processes on 127.0.0.1, or an existing one.

The local cluster speaks TLS with credentials made for this run (``Security.temporary``): Dask ships tasks as
pickles, so a scheduler any local user could reach would run their code as ours. An existing cluster is reached
with the user's certificates; a remote one without TLS is refused.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from monitor.errors import UserError


@dataclass(frozen=True)
class ClusterOptions:
    scheduler: str | None = None  # tcp://HOST:PORT or tls://HOST:PORT of an existing scheduler
    workers: int | None = None  # local worker processes (default: one per core)
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    dashboard: bool = True
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    # workers that fit models (torch, many short-lived tensors): glibc's own malloc thresholds, not Dask's
    compute_heavy: bool = False


# Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers (to return freed memory to the system), which also
# turns off glibc's adaptive mmap threshold: every allocation over 128 KiB becomes an mmap + page faults + munmap.
# A needle network fit then costs 1.6x the CPU it costs in a plain process (6.6-6.9 s against 4.0-4.2 s for 60 steps,
# benchmarks.md). Dask also leaves the variable in this process's environment once it has started a cluster, where
# later workers would inherit it: remember whether the user set it.
_USER_MALLOC_TRIM = os.environ.get("MALLOC_TRIM_THRESHOLD_")
_COMPUTE_HEAVY_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # the statistical profiler samples every thread's stack every 10 ms, taking the GIL from the fit: ~5 % of a
    # fit's CPU; one sample a second still draws the dashboard's profile of tasks that last seconds
    "distributed.worker.profile.interval": "1s",
    "distributed.worker.profile.cycle": "10s",
}


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def check_scheduler_address(address: str, has_tls: bool) -> str:
    """The address if it may be used; a remote scheduler without TLS (or a plain tcp:// one) is refused."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.port is None:
        raise UserError(f"--scheduler {address}: expected tcp://HOST:PORT or tls://HOST:PORT")
    if not _is_loopback(parts.hostname) and (parts.scheme != "tls" or not has_tls):
        raise UserError(
            f"--scheduler {address} is not on this machine and needs TLS: give a tls:// address with "
            "--tls-ca-file, --tls-cert and --tls-key (Dask's security options); tasks travel as pickles, so an "
            "unauthenticated scheduler would run anyone's code"
        )
    if parts.scheme == "tls" and not has_tls:
        raise UserError(f"--scheduler {address}: a tls:// scheduler needs --tls-ca-file, --tls-cert and --tls-key")
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"


def _security(options: ClusterOptions):  # -> distributed.Security
    from distributed import Security

    given = [options.tls_ca_file, options.tls_cert, options.tls_key]
    if any(given) and not all(given):
        raise UserError("TLS needs all three of --tls-ca-file, --tls-cert and --tls-key")
    for path in filter(None, given):
        if not os.path.isfile(path):
            raise UserError(f"TLS file not found: {path}")
    if not all(given):
        return None
    return Security(tls_ca_file=options.tls_ca_file, tls_client_cert=options.tls_cert,
                    tls_client_key=options.tls_key, require_encryption=True)


@contextmanager
def connect(options: ClusterOptions) -> Iterator[object]:
    """A ``distributed.Client``; a local cluster it started is closed with it."""
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the user sees our progress, not Dask's chatter
    if options.scheduler:
        security = _security(options)
        address = check_scheduler_address(options.scheduler, security is not None)
        try:
            client = Client(address, security=security, timeout="10s")
        except (OSError, TimeoutError) as error:
            raise UserError(f"cannot reach the Dask scheduler at {address}: {error}") from None
        with client:
            yield client
        return
    workers = options.workers or os.cpu_count() or 1
    if workers < 1:
        raise UserError(f"--workers {workers}: need at least one worker process")
    import dask

    settings = {}
    if options.compute_heavy:
        settings = _COMPUTE_HEAVY_CONFIG
        if _USER_MALLOC_TRIM is None:  # left here by an earlier cluster of this process, not the user's
            os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set(settings):  # read by the nannies as they start (and restart) their workers
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=options.threads_per_worker, processes=True, host="127.0.0.1",
            # the scheduler's HTTP server (dashboard or not) and every worker's listen on loopback only
            dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": options.dashboard and _has_bokeh()},
            security=True, memory_limit=options.memory_limit, silence_logs=logging.ERROR,
        )
    with cluster, Client(cluster) as client:
        yield client


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def add_cluster_arguments(parser: object, workers_help: str) -> None:
    """The options that choose where tasks run, shared by analyze, train and evaluate."""
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="an existing Dask scheduler (tls://HOST:PORT; tcp:// only on this machine); default: a "
                        "local cluster of worker processes on 127.0.0.1")
    parser.add_argument("--workers", type=int, help=workers_help)
    parser.add_argument("--tls-ca-file", help="TLS: the cluster's certificate authority (PEM)")
    parser.add_argument("--tls-cert", help="TLS: this client's certificate (PEM)")
    parser.add_argument("--tls-key", help="TLS: this client's private key (PEM)")
    parser.add_argument("--no-dashboard", action="store_true", help="no Dask dashboard for the local cluster")


def options_from(args: object) -> ClusterOptions:
    return ClusterOptions(scheduler=getattr(args, "scheduler", None), workers=getattr(args, "workers", None),
                          dashboard=not getattr(args, "no_dashboard", False),
                          tls_ca_file=getattr(args, "tls_ca_file", None), tls_cert=getattr(args, "tls_cert", None),
                          tls_key=getattr(args, "tls_key", None))


def wants_cluster(options: ClusterOptions) -> bool:
    """A scheduler was named or more than one local worker asked for; one local worker runs in this process."""
    return bool(options.scheduler) or (options.workers or 1) > 1


class TaskRunner:
    """``runner(function, calls)``: each call's arguments a Dask task, results in the order of ``calls``.

    Given to the model code (which knows nothing of clusters) so that folds or simulated subjects run wherever
    the command's cluster options say, or in this process when they ask for no cluster. A local cluster's workers
    are made for fitting (``compute_heavy``); an existing cluster's are as their owner started them.
    """

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options

    def __call__(self, function: object, calls: list[tuple]) -> list:
        if not wants_cluster(self.options):
            return [function(*call) for call in calls]
        with connect(replace(self.options, compute_heavy=True)) as client:
            futures = [client.submit(function, *call, pure=False) for call in calls]
            return client.gather(futures)
