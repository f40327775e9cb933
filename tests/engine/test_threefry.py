"""The CPU's written-out Threefry: the same bits as JAX's loop, without the loop."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simstudy.engine import threefry

#: Random123's known answers for threefry2x32 with 20 rounds: (key, counter) -> output.
KNOWN = [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]

DRAWS = (
    "import simstudy.engine, jax, numpy as np;"
    "k = jax.random.key(7);"
    "x = jax.jit(lambda k: jax.random.normal(k, (333,)) + jax.random.uniform(k, (333,)))(k);"
    "print(simstudy.engine.threefry.UNROLLED, np.asarray(x).tobytes().hex())"
)


def test_unrolled_on_this_jax():
    assert threefry.UNROLLED
    program = jax.jit(lambda k: jax.random.normal(k, (8,))).lower(jax.random.key(0)).compile()
    assert "while" not in program.as_text()


@pytest.mark.parametrize(("key", "counter", "expected"), KNOWN)
def test_known_answers(key, counter, expected):
    from jax._src.random.threefry2x32 import threefry_2x32

    out = jax.jit(threefry_2x32)(jnp.array(key, jnp.uint32), jnp.array(counter, jnp.uint32))
    assert [int(v) for v in np.asarray(out)] == list(expected)


def test_same_draws_as_the_loop():
    def run(mode: str) -> list[str]:
        env = {**os.environ, threefry.ENV: mode, "SIMSTUDY_JAX_CACHE": "off"}
        out = subprocess.run([sys.executable, "-c", DRAWS], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    loop, unrolled = run("loop"), run("")
    assert (loop[0], unrolled[0]) == ("False", "True")
    assert loop[1] == unrolled[1]
