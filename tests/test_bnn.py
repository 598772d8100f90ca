import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits_jax.bnn import ACTIVATIONS, MLP, init_mlp, sample_logit


def random_net(key, widths, activation="tanh", residual=False):
    keys = jax.random.split(key, 2 * len(widths))
    net = init_mlp(widths[0], widths[1:-1], activation, residual, fill_weight=0.0)
    leaves = [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, jax.tree.leaves(net))]
    return jax.tree.unflatten(jax.tree.structure(net), leaves)


def reference_forward(net: MLP, x):
    """Independent NumPy forward pass, written from the spec."""
    act = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0), "sigmoid": lambda z: 1 / (1 + np.exp(-z))}
    h = np.asarray(x, np.float64)
    for i, layer in enumerate(net.layers):
        z = h @ np.asarray(layer.weight, np.float64) + np.asarray(layer.bias, np.float64)
        if i < len(net.layers) - 1:
            out = act[net.activation](z)
            if net.use_residual_connections and z.shape[-1] >= h.shape[-1]:
                out = out + np.pad(h, (0, z.shape[-1] - h.shape[-1]))
            h = out
        else:
            h = z
    return h[0]


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("residual", [False, True])
def test_forward_matches_numpy_reference(getkey, activation, residual):
    net = random_net(getkey(), (3, 5, 2, 4, 1), activation, residual)
    x = jax.random.normal(getkey(), (3,))
    np.testing.assert_allclose(net(x), reference_forward(net, np.asarray(x)), rtol=1e-5, atol=1e-5)


def test_linear_network_is_logistic_regression(getkey):
    net = random_net(getkey(), (4, 1))
    x = jax.random.normal(getkey(), (4,))
    w, b = net.layers[0].weight[:, 0], net.layers[0].bias[0]
    np.testing.assert_allclose(net(x), x @ w + b, rtol=1e-6)


def test_all_documented_activations_exist():
    assert set(ACTIVATIONS) == {"tanh", "relu", "sigmoid", "gelu"}


def test_local_reparameterisation_matches_weight_sampling(getkey):
    """For one hidden layer, draws via local reparameterisation and via full weight samples
    have the same distribution: compare mean and std over many draws."""
    loc = random_net(getkey(), (3, 4, 1))
    scale = jax.tree.map(lambda x: 0.3 + 0.2 * jnp.abs(x), random_net(getkey(), (3, 4, 1)))
    x = jnp.array([0.5, -1.0, 2.0])
    n = 40_000
    local = jax.vmap(lambda k: sample_logit(loc, scale, x, key=k))(jax.random.split(getkey(), n))

    def full(k):
        ks = jax.random.split(k, len(jax.tree.leaves(loc)))
        leaves = [
            m + s * jax.random.normal(kk, m.shape)
            for kk, m, s in zip(ks, jax.tree.leaves(loc), jax.tree.leaves(scale))
        ]
        return jax.tree.unflatten(jax.tree.structure(loc), leaves)(x)

    weight = jax.vmap(full)(jax.random.split(getkey(), n))
    # Standard errors of mean and std of n draws are about std/sqrt(n) and std/sqrt(2n); allow 5 of them.
    sd = float(jnp.std(weight))
    assert abs(float(jnp.mean(local) - jnp.mean(weight))) < 5 * sd * np.sqrt(2 / n)
    assert abs(float(jnp.std(local)) - sd) < 5 * sd * np.sqrt(1 / n)
