"""The sampler and executor sections validated (local, SLURM, a runner, an address, Kubernetes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simstudy.config.settings import (
    EXECUTORS,
    SAMPLERS,
    ExecutorSettings,
    KubernetesSettings,
    RunnerSettings,
    SamplerSettings,
    SlurmSettings,
)
from simstudy.config.values import (
    _BYTES_RE,
    _K8S_QUANTITY_RE,
    TARGET_PREFIXES,
    _int,
    _lines,
    _memory_limit,
    _seconds,
    _section,
    _text,
    _timeout,
    _unit,
    walltime_seconds,
)
from simstudy.errors import InputError


def _sampler(raw: Any, where: str = "sampler") -> SamplerSettings:
    """Sampler settings from a config section (``where``: ``sampler`` or ``samplers.<est>``)."""
    d = _section(raw, where, [f.name for f in SamplerSettings.__dataclass_fields__.values()])
    name = d.get("name", "nuts")
    if name not in SAMPLERS:
        raise InputError(f"{where}.name", name, "one of " + ", ".join(SAMPLERS))
    target = d.get("target_accept", 0.8)
    # ChEES tunes its trajectory length from the spread of its chains
    chains = _int(f"{where}.chains", d.get("chains", 2), 2 if name == "chees" else 1)
    return SamplerSettings(
        name=name,
        chains=chains,
        warmup=_int(f"{where}.warmup", d.get("warmup", 500), 1),
        draws=_int(f"{where}.draws", d.get("draws", 500), 4),
        target_accept=_unit(f"{where}.target_accept", target, closed=False),
        max_tree_depth=_int(f"{where}.max_tree_depth", d.get("max_tree_depth", 10), 1),
        vectorize=_int(f"{where}.vectorize", d.get("vectorize", 1), 1),
    )


def _executor(raw: Any) -> ExecutorSettings:
    d = _section(raw, "executor", list(ExecutorSettings.__dataclass_fields__))
    name = d.get("name", "local")
    if name not in EXECUTORS:
        raise InputError("executor.name", name, "one of " + ", ".join(EXECUTORS))
    flags = {k: d.get(k, True) for k in ("dashboard", "pin_cores", "compile_first")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise InputError(f"executor.{key}", value, "true or false")
    return ExecutorSettings(
        name=name,
        n_workers=_int("executor.n_workers", d.get("n_workers"), 1, none_ok=True),
        batch_size=_int("executor.batch_size", d.get("batch_size", 16), 1),
        window=_int("executor.window", d.get("window"), 1, none_ok=True),
        retries=_int("executor.retries", d.get("retries", 1), 0),
        fit_timeout=_timeout("executor.fit_timeout", d.get("fit_timeout", 600.0)),
        no_worker_timeout=_timeout("executor.no_worker_timeout", d.get("no_worker_timeout", 120.0)),
        memory_limit=_memory_limit(d.get("memory_limit", "auto")),
        **flags,
        **_cluster_fields(d, name),
    )


def executor_settings(raw: Any) -> ExecutorSettings:
    """Validate an ``executor`` section alone (what the ranks of ``slurm_runner`` read)."""
    check_targets(raw, "executor")
    return _executor(raw)


def check_targets(raw: Any, where: str = "") -> None:
    """Refuse any ``_target_`` outside :data:`TARGET_PREFIXES`, anywhere in ``raw``.

    Nothing else may ever be instantiated from a config: a ``_target_`` names a class of
    simstudy, dask_jobqueue, distributed or dask_kubernetes, or it exits 2 naming the field.
    """
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_" and (
                not isinstance(value, str)
                or not value.startswith(TARGET_PREFIXES)
                or not re.fullmatch(r"[A-Za-z_][\w.]*", value)
            ):
                raise InputError(
                    path,
                    value,
                    "a dotted class name in simstudy, dask_jobqueue, distributed or "
                    "dask_kubernetes (nothing else is instantiated from a config)",
                )
            check_targets(value, path)
    elif isinstance(raw, (list, tuple)):
        for i, value in enumerate(raw):
            check_targets(value, f"{where}[{i}]")


def _target(name: str, value: Any, default: str) -> str:
    value = default if value is None else value
    check_targets({"_target_": value}, name.rsplit("._target_", 1)[0])
    return value


def _slurm(raw: Any) -> SlurmSettings:
    keys = list(SlurmSettings.__dataclass_fields__)
    d = _section(raw or {}, "executor.slurm", keys)
    f = "executor.slurm."
    cores = _int(f + "cores", d.get("cores", 1), 1)
    memory = d.get("memory", "4GB")
    if not isinstance(memory, str) or not _BYTES_RE.match(memory):
        raise InputError(f + "memory", memory, 'memory per job, such as "4GB" or "16GiB"')
    walltime = d.get("walltime", "01:00:00")
    if walltime_seconds(walltime) is None:
        raise InputError(
            f + "walltime",
            walltime,
            'a SLURM time limit in quotes: "MM", "HH:MM:SS" or "D-HH:MM:SS"',
        )
    maximum = _int(f + "maximum_jobs", d.get("maximum_jobs", 2), 1)
    minimum = _int(f + "minimum_jobs", d.get("minimum_jobs"), 0, none_ok=True)
    if minimum is not None and minimum > maximum:
        raise InputError(f + "minimum_jobs", minimum, f"at most maximum_jobs ({maximum}) or null")
    margin = _seconds(f + "lifetime_margin", d.get("lifetime_margin", 300.0))
    stagger = _seconds(f + "lifetime_stagger", d.get("lifetime_stagger", 120.0))
    lifetime = _seconds(f + "lifetime", d.get("lifetime"), none_ok=True, low=1.0)
    if lifetime is None and walltime_seconds(walltime) - margin - stagger < 60:
        raise InputError(
            f + "walltime",
            walltime,
            f"a time limit longer than lifetime_margin + lifetime_stagger + 60 s "
            f"({margin + stagger + 60:g} s): workers retire that long before it",
        )
    return SlurmSettings(
        _target_=_target(f + "_target_", d.get("_target_"), SlurmSettings._target_),
        cores=cores,
        memory=memory,
        walltime=walltime,
        queue=_text(f + "queue", d.get("queue"), what="a partition name"),
        account=_text(f + "account", d.get("account"), what="an account name"),
        job_extra_directives=_lines(f + "job_extra_directives", d.get("job_extra_directives")),
        job_script_prologue=_lines(f + "job_script_prologue", d.get("job_script_prologue")),
        interface=_text(f + "interface", d.get("interface"), what="a network interface (ib0)"),
        python=_text(f + "python", d.get("python"), what="the workers' python executable"),
        minimum_jobs=minimum,
        maximum_jobs=maximum,
        lifetime=lifetime,
        lifetime_margin=margin,
        lifetime_stagger=stagger,
        log_directory=_text(f + "log_directory", d.get("log_directory", "dask-worker-logs")),
        local_directory=_text(f + "local_directory", d.get("local_directory")),
    )


def _runner(raw: Any) -> RunnerSettings:
    d = _section(raw or {}, "executor.runner", list(RunnerSettings.__dataclass_fields__))
    f = "executor.runner."
    scheduler_file = _text(
        f + "scheduler_file",
        d.get("scheduler_file", RunnerSettings.scheduler_file),
        none_ok=False,
        what="a file path on a file system every node sees ({job_id} is replaced)",
    )
    return RunnerSettings(
        _target_=_target(f + "_target_", d.get("_target_"), RunnerSettings._target_),
        scheduler_file=scheduler_file,
        interface=_text(f + "interface", d.get("interface"), what="a network interface (ib0)"),
        local_directory=_text(f + "local_directory", d.get("local_directory")),
    )


def _kubernetes(raw: Any) -> KubernetesSettings:
    keys = list(KubernetesSettings.__dataclass_fields__)
    d = _section(raw or {}, "executor.kubernetes", keys)
    f = "executor.kubernetes."
    name = d.get("name", "simstudy")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name):
        raise InputError(f + "name", name, "a DNS label: lower-case letters, digits and '-'")
    image = _text(
        f + "image",
        d.get("image"),
        none_ok=False,
        what="a container image with this version of simstudy installed",
    )
    quantities = {}
    for key, default in (("cpu", "1"), ("memory", "4Gi")):
        value = d.get(key, default)
        value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(value, str) or not _K8S_QUANTITY_RE.match(value):
            raise InputError(f + key, value, 'a Kubernetes quantity such as "1", "500m", "4Gi"')
        quantities[key] = value
    env = d.get("env") or {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in env.items()
    ):
        raise InputError(f + "env", env, "a mapping of variable names to values")
    service = d.get("scheduler_service_type", "ClusterIP")
    if service not in ("ClusterIP", "NodePort", "LoadBalancer"):
        raise InputError(
            f + "scheduler_service_type", service, "ClusterIP, NodePort or LoadBalancer"
        )
    return KubernetesSettings(
        _target_=_target(f + "_target_", d.get("_target_"), KubernetesSettings._target_),
        name=name,
        namespace=_text(f + "namespace", d.get("namespace"), what="a namespace"),
        image=image,
        env={str(k): str(v) for k, v in env.items()},
        scheduler_service_type=service,
        **quantities,
    )


_ADDRESS_RE = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s/:]+:\d+$")


def _cluster_fields(d: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The settings of the cluster executors (none for ``local`` and ``synchronous``)."""
    for section, owner in (("slurm", "slurm"), ("runner", "slurm_runner")):
        if d.get(section) is not None and name != owner:
            raise InputError(f"executor.{section}", d[section], f"nothing unless executor={owner}")
    if d.get("kubernetes") is not None and name != "kubernetes":
        raise InputError(
            "executor.kubernetes", d["kubernetes"], "nothing unless executor=kubernetes"
        )
    out: dict[str, Any] = {
        "scheduler_host": _text(
            "executor.scheduler_host",
            d.get("scheduler_host"),
            what="a host name or IP address the workers reach this machine at",
        ),
    }
    if d.get("scheduler_host") is not None and name != "slurm":
        raise InputError(
            "executor.scheduler_host", d["scheduler_host"], "null unless executor=slurm"
        )
    address = d.get("address")
    if name == "address":
        if not isinstance(address, str) or not _ADDRESS_RE.match(address):
            raise InputError(
                "executor.address",
                address,
                "the address of a running Dask scheduler, such as tcp://10.0.0.5:8786",
            )
        out["address"] = address
    elif address is not None:
        raise InputError("executor.address", address, "null unless executor=address")
    workers = d.get("n_workers")
    if name in ("slurm", "slurm_runner", "address") and workers is not None:
        derived = {
            "slurm": "slurm.maximum_jobs × slurm.cores",
            "slurm_runner": "the allocation's tasks less two (srun -n)",
            "address": "read from the scheduler",
        }[name]
        raise InputError(
            "executor.n_workers", workers, f"null: with executor={name} it is {derived}"
        )
    if name == "kubernetes" and workers is None:
        raise InputError("executor.n_workers", workers, "the number of worker pods (>= 1)")
    if name == "slurm":
        out["slurm"] = _slurm(d.get("slurm"))
    elif name == "slurm_runner":
        out["runner"] = _runner(d.get("runner"))
    elif name == "kubernetes":
        out["kubernetes"] = _kubernetes(d.get("kubernetes"))
    return out
