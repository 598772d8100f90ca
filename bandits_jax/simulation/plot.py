"""Plotting a sweep's regret curves (matplotlib, the optional ``sim`` extra). Part of :mod:`bandits_jax.simulation` (see its docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bandits_jax.simulation.run import ORACLE, SimulationResult, Trace


# ---------------------------------------------------------------------------------- plotting
def plot_regret(
    result: SimulationResult | Mapping[str, Trace],
    ax=None,
    *,
    policies: Sequence[str] | None = None,
    label: str = "",
    band: tuple[float, float] = (10.0, 90.0),
    title: str = "",
):
    """Mean cumulative regret over runs, with a percentile ``band`` over runs, one curve per policy.

    Args:
        result: a sweep's result (leading run axis): a :class:`SimulationResult` or a dict of
            :class:`Trace` by policy name.
        ax: matplotlib axes to draw on; default a new figure (matplotlib's object API, so no pyplot
            state and no backend change), reachable as ``ax.figure``.
        policies: which traces to draw (default every policy but the oracle); the oracle is drawn
            as the zero line.
        label: prefix of the legend entries (e.g. the setting of this sweep).

    Returns:
        The axes.

    Raises:
        ImportError: matplotlib is not installed (it is the optional ``sim`` extra).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "plotting needs matplotlib, an optional extra: pip install 'bandits_jax[sim]'"
        ) from err
    names = {"policy": "Bayesian-NN CMAB", "random": "uniform random", "smab": "sMAB (no context)"}
    if ax is None:
        ax = Figure(figsize=(6.4, 4.0), layout="constrained").add_subplot()
    traces = result._asdict() if isinstance(result, SimulationResult) else dict(result)
    if policies is None:
        policies = (
            ("policy", "random", "smab")
            if isinstance(result, SimulationResult)
            else [n for n in traces if n != ORACLE]
        )
    for name in policies:
        curves = np.asarray(traces[name].cumulative_regret)
        rounds = np.arange(1, curves.shape[1] + 1)
        (line,) = ax.plot(rounds, curves.mean(axis=0), label=f"{label}{names.get(name, name)}")
        lo, hi = np.percentile(curves, band, axis=0)
        ax.fill_between(rounds, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.axhline(0.0, color="k", linewidth=0.8, linestyle="--", label="oracle" if not label else None)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative expected regret")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return ax
