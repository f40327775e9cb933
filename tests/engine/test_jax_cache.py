"""The persistent compilation cache is shared by processes, so it must lock."""

import subprocess
import sys


def test_the_shared_cache_takes_its_file_lock(tmp_path):
    """JAX locks reads and writes only when the cache has a size limit.

    Without the lock a Dask worker can read an entry another is still writing and crash in
    XLA (seen as segfaults in ``get_executable_and_time``). A fresh process, so that this
    one's cache settings do not matter.
    """
    code = (
        "import simstudy.engine, jax\n"
        "from jax._src import compilation_cache as cc\n"
        "jax.jit(lambda x: x + 1)(1.0)\n"
        "cache = cc._get_cache(jax.devices()[0].client)\n"
        "print(type(cache).__name__, cache.eviction_enabled, type(cache.lock).__name__)\n"
    )
    env = {"SIMSTUDY_JAX_CACHE": str(tmp_path / "jax"), "JAX_PLATFORMS": "cpu", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["LRUCache", "True", "UnixFileLock"], out.stdout + out.stderr
