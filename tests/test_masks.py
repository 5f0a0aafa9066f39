"""Legal-action masks: an `action_mask` observation leaf masks the categorical policy from the first update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.envs import MASK_KEY, legal_actions, make_env
from pgjax.algo.policy import (
    MASKED_LOGIT,
    entropy,
    log_prob,
    make_apply_fn,
    make_distribution,
    make_policy,
    make_value_fn,
    make_value_network,
    masked_logits,
)
from pgjax.algo.rollout import make_collect
from pgjax.algo.trainer import make_train
from pgjax.results.evaluation import policy_callable
from tests.conftest import small_config
from tests.masked import make_doors, make_doors_push

NUM_DOORS = 5


def legal_taken(spec, traj) -> np.ndarray:
    """bool [T, E]: whether each step's action was legal under the mask it was chosen on (True on padding)."""
    legal = np.asarray(legal_actions(spec, traj.obs.astype(jnp.float32)))
    action = np.asarray(traj.action)
    if spec.action_kind == "multi_discrete":
        legal = legal.reshape(legal.shape[:-1] + (len(spec.action_nvec), NUM_DOORS))
        ok = np.take_along_axis(legal, action[..., None], -1)[..., 0].all(-1)
    else:
        ok = np.take_along_axis(legal, action[..., None], -1)[..., 0]
    return ok | ~np.asarray(traj.valid)


@pytest.fixture(scope="module", params=[False, True], ids=["discrete", "multi_discrete"])
def doors(request):
    return make_env(make_doors(NUM_DOORS, multi=request.param))


def test_the_mask_ends_the_encoded_observation(doors):
    entries = 2 if doors.action_kind == "multi_discrete" else 1
    assert doors.mask_size == doors.num_actions == entries * NUM_DOORS
    assert doors.obs_shape == (8 + doors.mask_size,)  # the clock's one-hot, then the mask
    obs, _ = doors.env.reset(jax.random.key(3), doors.params)
    encoded = doors.encode_obs(obs)
    np.testing.assert_array_equal(legal_actions(doors, encoded), obs[MASK_KEY])


def test_the_network_does_not_see_the_mask(doors):
    """The network's first layer takes the 8 features only, and a mask changes only which logits are masked."""
    config = small_config(env="tests.masked:make_doors", hidden=(16,))
    policy = make_policy(doors, config)
    params = policy.init(jax.random.key(0), jnp.zeros(doors.obs_shape))["params"]
    assert params["network"]["TorchDense_0"]["Dense_0"]["kernel"].shape == (8, 16)
    apply_fn = make_apply_fn(policy)
    features = jnp.zeros(8).at[2].set(1.0)
    open_all = apply_fn(params, jnp.concatenate([features, jnp.ones(doors.mask_size)]))
    some = jnp.zeros(doors.mask_size).at[1].set(1.0).at[3].set(1.0)
    out = apply_fn(params, jnp.concatenate([features, some]))
    np.testing.assert_array_equal(out[some > 0], open_all[some > 0])
    assert np.all(np.asarray(out[some == 0]) == MASKED_LOGIT)
    value = make_value_network(doors, config)  # a value network strips the mask and masks nothing
    value_params = value.init(jax.random.key(0), jnp.zeros(doors.obs_shape))["params"]
    v_all = make_value_fn(value)(value_params, jnp.concatenate([features, jnp.ones(doors.mask_size)]))
    v_some = make_value_fn(value)(value_params, jnp.concatenate([features, some]))
    assert float(v_all) == float(v_some) and np.isfinite(float(v_all))


def test_masked_distribution_is_the_legal_actions_alone():
    logits = jnp.array([0.3, -1.2, 2.0, 0.5])
    legal = jnp.array([True, False, True, False])
    masked = masked_logits(logits, legal)
    np.testing.assert_allclose(entropy(jnp.zeros(4).at[~legal].set(MASKED_LOGIT)), np.log(2), rtol=1e-6)
    probs = np.exp(np.asarray([log_prob(masked, jnp.int32(a)) for a in range(4)]))
    expected = np.exp([0.3, 2.0]) / np.exp([0.3, 2.0]).sum()
    np.testing.assert_allclose(probs[[0, 2]], expected, rtol=1e-5)
    assert probs[1] == 0 and probs[3] == 0
    grad = jax.grad(lambda x: entropy(masked_logits(x, legal)) + log_prob(masked_logits(x, legal), jnp.int32(2)))(
        logits)
    assert np.all(np.asarray(grad)[~np.asarray(legal)] == 0)


def test_no_illegal_action_from_the_first_update_even_where_the_network_prefers_one(doors):
    """Initial parameters whose logits put almost all probability on door 0 (often closed): no closed door is
    ever taken, sampled or greedy."""
    config = small_config(env="tests.masked:make_doors")
    policy = make_policy(doors, config)
    params = policy.init(jax.random.key(0), jnp.zeros(doors.obs_shape))["params"]
    head = params["network"]["TorchDense_1"]["Dense_0"]
    favour = jnp.zeros(doors.num_actions).at[0].set(50.0)
    if doors.action_kind == "multi_discrete":
        favour = favour.at[NUM_DOORS].set(50.0)
    params["network"]["TorchDense_1"]["Dense_0"] = dict(head, bias=head["bias"] + favour)
    dist = make_distribution(doors)
    for greedy in (False, True):
        collect = jax.jit(make_collect(doors, make_apply_fn(policy), 256, dist, greedy=greedy))
        traj = collect(params, jax.random.key(1))
        assert int(traj.valid.sum()) == 256 * 6  # no episode ended on a closed door
        assert legal_taken(doors, traj).all()


def test_training_learns_the_best_open_door_and_never_opens_a_closed_one(doors):
    config = small_config(env="tests.masked:make_doors", num_updates=40, episodes_per_update=8)
    train = jax.jit(jax.vmap(make_train(config, env=doors)))
    state, metrics = train(jax.vmap(jax.random.key)(jnp.arange(4)))
    returns = np.asarray(metrics.episode_return)  # [runs, updates]
    entries = 2 if doors.action_kind == "multi_discrete" else 1
    assert np.all(returns >= 0)  # a closed door gives -1 and ends the episode: never taken
    assert returns[:, -5:].mean() > 0.8 * 6 * entries  # the best open door, nearly every step
    assert returns[:, -5:].mean() > returns[:, :3].mean() + 1.0


def test_a_trained_policy_acts_legally(doors):
    multi = ("multi=true",) if doors.action_kind == "multi_discrete" else ()
    config = small_config(env="tests.masked:make_doors", env_kwargs=multi)
    policy = make_policy(doors, config)
    params = policy.init(jax.random.key(5), jnp.zeros(doors.obs_shape))["params"]
    act = policy_callable(config, params, greedy=True)
    obs, _ = jax.vmap(doors.env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(2), 64), doors.params)
    encoded = jax.vmap(doors.encode_obs)(obs)
    actions = np.asarray(act(encoded)).reshape(64, -1)
    legal = np.asarray(obs[MASK_KEY]).reshape(64, -1, NUM_DOORS)
    assert all(legal[i, d, a] for i in range(64) for d, a in enumerate(actions[i]))


def test_masks_are_refused_where_they_cannot_serve():
    with pytest.raises(ValueError, match="action_mask, but its actions are a Box"):
        make_env(make_doors_push())
