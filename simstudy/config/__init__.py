"""Study configuration: typed settings, validation, and conversion of a Hydra config to a plan.

Everything a run needs is checked here, before any work starts. Each problem raises
:class:`~simstudy.errors.InputError` naming the field, the bad value and what is allowed; the
command line turns it into exit code 2. The modules: :mod:`.settings` (what a valid config
becomes), :mod:`.values` (single values), :mod:`.executor` (sampler and executor), :mod:`.study`
(the study and its model), :mod:`.checks` (the machine, the results directory).
"""

from __future__ import annotations

from simstudy.config.checks import (  # noqa: F401
    RECORD_BYTES,
    TASK_BYTES,
    WORKER_BASE_BYTES,
    WORKERS_PER_CORE,
    available_cores,
    check_results_dir,
    check_runnable,
    declared_info,
    driver_bytes,
    fit_bytes,
    gib,
    info_of,
    machine_memory,
    worker_bytes,
)
from simstudy.config.executor import (  # noqa: F401
    check_targets,
    executor_settings,
)
from simstudy.config.settings import (  # noqa: F401
    BATCHED_SAMPLERS,
    CLUSTER_EXECUTORS,
    EXECUTORS,
    INTERCHANGEABLE,
    SAMPLERS,
    STUDY_TYPES,
    TARGET_MEASURES,
    AggregateSettings,
    ExecutorSettings,
    KubernetesSettings,
    ModelKind,
    ModelSettings,
    PrecisionTarget,
    RunnerSettings,
    SamplerSettings,
    SlurmSettings,
    StudyPlan,
    config_hash,
)
from simstudy.config.study import (  # noqa: F401
    POINT_ESTIMATES,
    FitPlan,
    fit_plan_from_dict,
    plan_from_config,
    plan_from_dict,
    read_config_file,
)
from simstudy.config.values import (  # noqa: F401
    TARGET_PREFIXES,
    size_bytes,
    walltime_seconds,
)
