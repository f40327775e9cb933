"""Where configs are found: the user's own tree first, then the ``conf/`` shipped with simstudy.

A user's tree may hold only the user's files (``study/my_study.yaml``, ``model/my_model.yaml``)
or a full copy of ``conf/``; either way it is searched before the package's tree, so a file of
the user's wins over the package's of the same name, and everything else comes from the package.
The user's tree enters Hydra's config search path through a search-path plugin (Hydra's
``hydra.searchpath`` can only append after the primary tree, where the package's files would win).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from simstudy.errors import InputError

#: The config tree shipped beside the package (the repository's ``conf/``).
PACKAGE_CONF = Path(__file__).resolve().parents[1] / "conf"

#: The environment variable naming a user's config tree (``--config-dir`` wins over it).
ENV = "SIMSTUDY_CONFIG_DIR"

#: User trees searched before the package's while :func:`initialized` is active.
_USER_TREES: list[Path] = []

#: The tree this invocation's ``--config-dir`` names (None: not given).
_GIVEN: list[Path | None] = [None]


def given_tree() -> Path | None:
    """The config tree this invocation's ``--config-dir`` named (None: not given)."""
    return _GIVEN[0]


@contextmanager
def giving(tree: Path | None) -> Iterator[None]:
    """Within the block, :func:`given_tree` is ``tree`` (a command's ``--config-dir``)."""
    before = _GIVEN[0]
    _GIVEN[0] = tree
    try:
        yield
    finally:
        _GIVEN[0] = before


def checked_dir(field: str, value: str) -> Path:
    """``value`` as an absolute directory; exit 2 naming ``field`` when it is not one."""
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise InputError(
            field,
            value,
            "an existing directory of your config files (e.g. study/NAME.yaml, "
            "model/NAME.yaml), searched before simstudy's own conf/",
        )
    return path


def search_dirs(given: Path | None) -> list[Path]:
    """The config trees in search order: the user's, then the package's ``conf/``.

    The user's is ``given`` (``--config-dir``), else ``$SIMSTUDY_CONFIG_DIR``, else none.
    A ``conf/`` in the working directory is never picked up silently: the user names it.
    """
    user = given
    if user is None and os.environ.get(ENV):
        user = checked_dir(ENV, os.environ[ENV])
    if user is None or user == PACKAGE_CONF:
        return [PACKAGE_CONF]
    return [user, PACKAGE_CONF]


def group_files(dirs: Sequence[Path], group: str) -> dict[str, Path]:
    """``name -> file`` of a config group's options over ``dirs``, the first tree's winning."""
    found: dict[str, Path] = {}
    for conf in dirs:
        for path in sorted((conf / group).glob("*.yaml")):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def _plugin() -> type:
    """The search-path plugin that puts :data:`_USER_TREES` before Hydra's primary tree."""
    from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    class UserTrees(SearchPathPlugin):
        def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
            main = SearchPathQuery(provider="main")
            for tree in _USER_TREES:
                search_path.prepend("simstudy-user", f"file://{tree}", anchor=main)

    return UserTrees


_PLUGIN: type | None = None


@contextmanager
def initialized(dirs: Sequence[Path]) -> Iterator[None]:
    """Hydra's compose API over ``dirs`` (see :func:`search_dirs`), earlier trees winning.

    The last tree is Hydra's primary one; the others are searched before it, so that a tree
    holding only some files composes with ``config.yaml`` and the rest from the package.
    """
    global _PLUGIN
    from hydra import initialize_config_dir
    from hydra.core.plugins import Plugins

    if _PLUGIN is None:
        _PLUGIN = _plugin()
        Plugins.instance().register(_PLUGIN)
    _USER_TREES[:] = [Path(d) for d in dirs[:-1]]
    try:
        with initialize_config_dir(config_dir=str(dirs[-1]), version_base="1.3"):
            yield
    finally:
        _USER_TREES.clear()
