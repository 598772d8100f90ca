"""Bayesian MLP: parameter pytrees, forward pass and posterior sampling.

A network's parameters are an equinox module whose leaves are the weights ``(in, out)`` and biases
``(out,)`` of each layer, so input features are the *rows* of the first weight. A posterior (and a
prior) is a pair of such modules, ``loc`` and ``scale``, one Normal per weight (mean field).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bandits_jax import _random

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
}


class Layer(eqx.Module):
    """One dense layer: ``x @ weight + bias``."""

    weight: Float[Array, "in out"]
    bias: Float[Array, " out"]


class MLP(eqx.Module):
    """Parameters of a Bayesian MLP with a single logit output.

    ``activation`` is applied after every hidden layer (not the output layer). With
    ``use_residual_connections`` a hidden layer whose output is at least as wide as its input adds
    the input, zero-padded to the output width (as PyBandits does).

    Examples:
        >>> import jax.numpy as jnp
        >>> net = init_mlp(3, (8,), "tanh", False, fill_weight=0.1, fill_bias=0.0)
        >>> net(jnp.ones(3)).shape
        ()
    """

    layers: tuple[Layer, ...]
    activation: str = eqx.field(static=True)
    use_residual_connections: bool = eqx.field(static=True)

    @property
    def widths(self) -> tuple[int, ...]:
        """Input width followed by every layer's output width."""
        return (self.layers[0].weight.shape[-2],) + tuple(layer.bias.shape[-1] for layer in self.layers)

    def _hidden(self, h: Array, z: Array) -> Array:
        out = ACTIVATIONS[self.activation](z)
        if self.use_residual_connections and z.shape[-1] >= h.shape[-1]:
            out = out + jnp.pad(h, (0, z.shape[-1] - h.shape[-1]))
        return out

    def __call__(self, x: Float[Array, " n_features"]) -> Float[Array, ""]:
        """Logit of one example under these (point) parameters (the first output unit)."""
        return self.outputs(x)[0]

    def features(self, x: Float[Array, " n_features"]) -> Float[Array, " width"]:
        """The last hidden layer's activations of one example (``x`` itself without hidden
        layers): the representation that a linear head on top of the network sees."""
        h = x
        for layer in self.layers[:-1]:
            h = self._hidden(h, h @ layer.weight + layer.bias)
        return h

    def outputs(self, x: Float[Array, " n_features"]) -> Float[Array, " n_outputs"]:
        """Every output unit of one example under these (point) parameters."""
        out = self.layers[-1]
        return self.features(x) @ out.weight + out.bias


def layer_widths(n_features: int, hidden_dim_list: Sequence[int]) -> tuple[int, ...]:
    return (n_features, *hidden_dim_list, 1)


def init_mlp(
    n_features: int,
    hidden_dim_list: Sequence[int],
    activation: str,
    use_residual_connections: bool,
    *,
    fill_weight: float | Array,
    fill_bias: float | Array | None = None,
    dtype=None,
) -> MLP:
    """An MLP whose every weight is ``fill_weight`` and every bias ``fill_bias`` (default: same)."""
    fill_bias = fill_weight if fill_bias is None else fill_bias
    # An explicit dtype: weakly typed leaves would make the first jitted call retrace later.
    dtype = jnp.result_type(float) if dtype is None else dtype
    widths = layer_widths(n_features, hidden_dim_list)
    layers = tuple(
        Layer(
            weight=jnp.full((i, o), fill_weight, dtype=dtype),
            bias=jnp.full((o,), fill_bias, dtype=dtype),
        )
        for i, o in zip(widths[:-1], widths[1:])
    )
    return MLP(layers, activation, use_residual_connections)


def random_mlp(
    key: PRNGKeyArray,
    n_features: int,
    hidden_dim_list: Sequence[int],
    activation: str = "tanh",
    use_residual_connections: bool = False,
    *,
    n_outputs: int = 1,
    dtype=None,
) -> MLP:
    """A point-estimate MLP with LeCun-normal weights (``N(0, 1 / fan_in)``: unit-variance
    pre-activations for unit-variance inputs) and zero biases; ``n_outputs`` output units.
    Traceable in ``key`` (a ``vmap`` over keys gives an ensemble)."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    widths = (n_features, *hidden_dim_list, n_outputs)
    # every weight in one flat draw (see bandits_jax._random: far cheaper to compile on CPU)
    sizes = [i * o for i, o in zip(widths[:-1], widths[1:])]
    flat = _random.normal(key, (sum(sizes),), dtype)
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    layers = tuple(
        Layer(
            weight=flat[s : s + i * o].reshape(i, o) / math.sqrt(i),
            bias=jnp.zeros((o,), dtype),
        )
        for s, i, o in zip(starts, widths[:-1], widths[1:])
    )
    return MLP(layers, activation, use_residual_connections)


def sample_logits(
    loc: MLP, scale: MLP, x: Float[Array, "n_rows n_features"], *, key: PRNGKeyArray
) -> Float[Array, " n_rows"]:
    """One independent Thompson draw of the logit of every row under the mean-field posterior.

    Local reparameterisation: given a layer's input ``h``, its pre-activations under an independent
    weight draw are exactly Normal with mean ``h @ loc`` and variance ``(h*h) @ scale**2``
    (independent across output units). Sampling layer by layer is therefore an exact draw from the
    posterior predictive of each row, independently per row, at the cost of two matmuls per layer
    instead of a sample of every weight per row.
    """
    eps = _random.normal(key, (x.shape[0], n_units(loc)), x.dtype)
    return logits_from_noise(loc, scale, x, eps)


def n_units(net: MLP) -> int:
    """Pre-activation units per row over all layers (the noise one draw of a row needs)."""
    return sum(layer.bias.shape[-1] for layer in net.layers)


def logits_from_noise(
    loc: MLP,
    scale: MLP,
    x: Float[Array, "n_rows n_features"],
    eps: Float[Array, "n_rows n_units"],
) -> Float[Array, " n_rows"]:
    """:func:`sample_logits` given its standard-normal noise, one column per unit of every layer
    in order (``n_units(loc)`` columns)."""
    h = x
    start = 0
    for i, (mu, sd) in enumerate(zip(loc.layers, scale.layers)):
        mean = h @ mu.weight + mu.bias
        var = (h * h) @ jnp.square(sd.weight) + jnp.square(sd.bias)
        width = mean.shape[-1]
        z = mean + jnp.sqrt(var) * eps[:, start : start + width]
        start += width
        h = z if i == len(loc.layers) - 1 else jax.vmap(loc._hidden)(h, z)
    return h[:, 0]


def sample_logit(
    loc: MLP, scale: MLP, x: Float[Array, " n_features"], *, key: PRNGKeyArray
) -> Float[Array, ""]:
    """:func:`sample_logits` for one row."""
    return sample_logits(loc, scale, x[None], key=key)[0]


def n_params(net: MLP) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(net))
