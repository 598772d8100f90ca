"""Opt-in persistent compilation cache, so a fresh process skips XLA compilation it has done before.

Never switched on at import: call :func:`enable_compilation_cache` once at the top of a script.
"""

from __future__ import annotations

import os

import jax


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str:
    """Store compiled programs in ``path`` (default ``~/.cache/bandits_jax/xla``) and reuse them
    across processes. Returns the folder used.

    This sets JAX's global ``jax_compilation_cache_dir`` (and caches even small, fast-compiling
    programs), which is why it is a function you call, not something the import does.

    Examples:
        >>> import bandits_jax
        >>> folder = bandits_jax.enable_compilation_cache()  # doctest: +SKIP
    """
    folder = (
        os.fspath(path)
        if path is not None
        else os.path.join(os.path.expanduser("~"), ".cache", "bandits_jax", "xla")
    )
    os.makedirs(folder, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
