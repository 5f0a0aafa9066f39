"""`python -m pgjax.gradients`: a run's estimators on the same batches of episodes, the paired bootstrap, the
policies it measures (final, initial, a learned value's), one's own weighting, refusals."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.algo.gradients import compared_weightings, estimator_statistics
from pgjax.algo.trainer import make_trainer
from pgjax.commands import gradients
from pgjax.commands.train import main as train_main
from pgjax.results import gradient_stats
from pgjax.running.run_folder import loading
from pgjax.running.run_folder.files import VALUE_PARAMS_FILE

from .test_startup import _run

TINY_RUN = ["--num-seeds", "1", "--num-updates", "5", "--episodes-per-update", "2", "--hidden", "8", "--quiet"]
SMALL = ["--episodes", "16", "--reference-batches", "2", "--resamples", "300", "--seed", "3"]  # 8 batches of 2


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A tiny CartPole run folder: one seed of 5 updates of 2 episodes, a network of 8 units."""
    out = tmp_path_factory.mktemp("gradients") / "run"
    assert train_main([*TINY_RUN, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def learned_folder(tmp_path_factory):
    """The tiny run with a learned value baseline (reward-to-go minus V(s))."""
    out = tmp_path_factory.mktemp("gradients") / "learned"
    assert train_main([*TINY_RUN, "--returns", "reward_to_go", "--baseline", "value", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def measured(run_folder):
    """The command's gradients.json on the tiny run (8 batches of 2 episodes, a reference of 32 batches)."""
    assert gradients.main([str(run_folder), *SMALL]) == 0
    return json.loads((run_folder / "gradients.json").read_text())


def test_json_holds_every_weighting_with_its_statistics(run_folder, measured):
    config = loading.load_run_config(run_folder, 0)
    names = [entry["name"] for entry in measured["weightings"]]
    assert names == list(compared_weightings(config, learned=False)) and names[0] == "run"
    assert {k: measured[k] for k in ("env", "run", "policy", "seed", "episodes", "batches", "batch_episodes",
                                     "baseline_weighting")} == {
        "env": "CartPole-v1", "run": 0, "policy": "final", "seed": 3, "episodes": 16, "batches": 8,
        "batch_episodes": 2, "baseline_weighting": "run"}
    reference = measured["reference"]
    assert {k: reference[k] for k in ("weighting", "batches", "episodes")} == {
        "weighting": "reward_to_go", "batches": 16, "episodes": 32}
    assert reference["norm"] > 0 and reference["variance"] > 0
    assert measured["bootstrap"]["resamples"] == 300 and measured["bootstrap"]["confidence"] == 0.95
    for entry in measured["weightings"]:
        assert set(entry) == {"name", *gradient_stats.STATISTICS}
        for statistic in gradient_stats.STATISTICS:
            assert set(entry[statistic]) == {"point", "ci95"} and len(entry[statistic]["ci95"]) == 2
        assert entry["episode_variance"]["point"] > 0 and entry["update_variance"]["point"] > 0
        assert -1 <= entry["cosine"]["point"] <= 1
    for ratio in ("variance_ratio", "snr_ratio"):
        assert measured["weightings"][0][ratio] == {"point": 1.0, "ci95": [1.0, 1.0]}
    assert measured["weightings"][0]["cosine_difference"] == {"point": 0.0, "ci95": [0.0, 0.0]}
    assert (run_folder / "gradients.png").read_bytes().startswith(b"\x89PNG")


def test_intervals_contain_their_point_estimates(measured):
    for entry in measured["weightings"]:
        for statistic in gradient_stats.STATISTICS:
            low, high = entry[statistic]["ci95"]
            point = entry[statistic]["point"]
            assert low - 1e-9 * abs(point) <= point <= high + 1e-9 * abs(point), (entry["name"], statistic)


@pytest.fixture(scope="module")
def remeasured(run_folder):
    """The command's measurement again, from the library, with its keys: the same episodes and reference."""
    config = loading.load_run_config(run_folder, 0)
    configs = gradient_stats.estimators_of(config, learned=False)
    key = jax.random.key(3)
    return gradient_stats.measure_gradients(configs, configs["reward_to_go"], loading.load_params(run_folder, 0),
                                            jax.random.fold_in(key, 0), jax.random.fold_in(key, 1), 8, 2, 2)


def test_points_are_the_statistics_of_those_batches(measured, remeasured):
    grads, reference = remeasured.grads, remeasured.reference
    assert grads.shape == (len(remeasured.names), 8, 2, measured["parameters"]) and remeasured.returns.shape == (16,)
    assert measured["mean_return"] == pytest.approx(remeasured.returns.mean())
    assert not np.allclose(grads[1], grads[2])  # the weightings differ on the same episodes
    for w, entry in enumerate(measured["weightings"]):
        g = grads[w].astype(np.float64)
        means = g.mean(axis=1)  # [K, P]: the updates' estimates
        update_variance = means.var(axis=0, ddof=1).sum()
        rows = estimator_statistics(jnp.asarray(g.reshape(16, -1)))
        cosines = means @ reference.mean / (np.linalg.norm(means, axis=1) * np.linalg.norm(reference.mean))
        squared_error = np.mean(np.sum((means - reference.mean) ** 2, axis=1)) - reference.variance
        mean = means.mean(axis=0)
        expected = {
            "episode_variance": float(rows.episode_variance), "update_variance": update_variance,
            "snr": (mean @ mean - update_variance / 8) / update_variance, "cosine": cosines.mean(),
            "squared_error": squared_error, "squared_bias": squared_error - update_variance,
            "variance_ratio": update_variance / grads[0].mean(axis=1).var(axis=0, ddof=1).sum(),
        }
        if w == 0:
            run_snr, run_cosine = expected["snr"], expected["cosine"]
        expected["snr_ratio"] = expected["snr"] / run_snr
        expected["cosine_difference"] = expected["cosine"] - run_cosine
        for statistic, value in expected.items():
            assert entry[statistic]["point"] == pytest.approx(value, rel=2e-4, abs=1e-9), (entry["name"], statistic)


def test_batch_weightings_are_normalised_over_each_batch_as_in_training(run_folder, remeasured):
    """batch_norm's weights of one batch of E: standardised over that batch's steps, so the estimates of a batch
    are the update's own (not those of weights standardised over all K * E episodes)."""
    config = loading.load_run_config(run_folder, 0)
    configs = gradient_stats.estimators_of(config, learned=False)
    from pgjax.algo.gradients import make_episode_gradients

    estimates = make_episode_gradients(configs["batch_norm"], num_episodes=2)
    params = jax.tree.map(jnp.asarray, loading.load_params(run_folder, 0))
    key = jax.random.fold_in(jax.random.key(3), 0)
    batch = estimates.collect(params, jax.random.split(key, 8)[5])
    w = remeasured.names.index("batch_norm")
    np.testing.assert_allclose(remeasured.grads[w, 5], estimates.gradients(params, batch), rtol=1e-4, atol=1e-6)


def test_counts_resample_the_batches_as_indices_do(monkeypatch):
    rng = np.random.default_rng(0)
    grads, reference = rng.normal(size=(2, 12, 3, 5)), rng.normal(size=5)
    counts = gradient_stats.resample_counts(12, 50, seed=1)
    assert counts.shape == (50, 12) and np.all(counts.sum(axis=1) == 12)
    indices = np.repeat(np.arange(12), counts[7].astype(int))  # draw 7's batches, as indices
    draws = gradient_stats.bootstrap_draws(grads, reference, 0.1, counts)
    monkeypatch.setattr(gradient_stats, "DRAW_BLOCK_NUMBERS", 7)  # the draws a block at a time: the same
    blocked = gradient_stats.bootstrap_draws(grads, reference, 0.1, counts)
    for name in gradient_stats.STATISTICS:
        np.testing.assert_allclose(blocked[name], draws[name], rtol=1e-12)
    resampled = gradient_stats.bootstrap_draws(grads[:, indices], reference, 0.1, np.ones((1, 12)))
    for name in gradient_stats.STATISTICS:
        np.testing.assert_allclose(draws[name][7], resampled[name][0], rtol=1e-9)


def test_an_update_of_gradient_zero_counts_cosine_zero():
    """batch_norm's weights are all 0 on a batch whose episodes return the same (CartPole's step limit): that
    update does not move, and its cosine with the reference counts 0 (not nan) in the mean over updates."""
    reference = np.array([1.0, 0.0])
    grads = np.array([[[[2.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]]]])  # [W=1, K=3, E=1, P=2]
    draws = gradient_stats.bootstrap_draws(grads, reference, 0.0, np.ones((1, 3)))
    assert draws["cosine"][0, 0] == pytest.approx((1.0 + 0.0 + 2**-0.5) / 3)


def test_the_bootstrap_is_paired_by_batch():
    """Estimator 1 is twice estimator 0 episode by episode: on every paired draw its variance is exactly 4 times
    the other's and its SNR the same, so the paired interval of the ratio is [4, 4]; drawn apart, the
    batches' noise widens it."""
    rng = np.random.default_rng(0)
    base = rng.standard_t(3, size=(40, 2, 6))
    grads, reference = np.stack([base, 2 * base]), rng.normal(size=6)
    paired = gradient_stats.paired_statistics(grads, reference, baseline=0, reps=500)
    np.testing.assert_allclose([paired["variance_ratio"]["low"][1], paired["variance_ratio"]["high"][1]], 4.0)
    np.testing.assert_allclose(paired["snr"]["low"][1], paired["snr"]["low"][0], rtol=1e-9)
    np.testing.assert_allclose([paired["snr_ratio"]["low"][1], paired["snr_ratio"]["high"][1]], 1.0)
    np.testing.assert_allclose([paired["cosine_difference"]["low"][1], paired["cosine_difference"]["high"][1]], 0.0,
                               atol=1e-12)  # the same direction on every batch
    apart = [gradient_stats.bootstrap_draws(grads[[w]], reference, 0.0, gradient_stats.resample_counts(40, 500, w))
             for w in range(2)]
    ratio = apart[1]["update_variance"][:, 0] / apart[0]["update_variance"][:, 0]
    low, high = np.quantile(ratio, [0.025, 0.975])
    assert high - low > 1.0  # unpaired: far from one value


def test_the_squared_bias_interval_covers_an_unbiased_estimators_zero():
    """An unbiased estimator (Gaussian estimates whose mean is the reference): its squared bias is 0. The plain
    percentile interval of the debiased |m - r|^2 lies above its point by about V / K and so misses 0 in most
    experiments; the centred interval covers it about as often as 95% intervals should."""
    rng = np.random.default_rng(1)
    truth = rng.normal(size=20)
    covered, plain = 0, 0
    experiments = 60
    for _ in range(experiments):
        grads = truth + rng.normal(size=(1, 30, 2, 20)) * 3.0
        result = gradient_stats.paired_statistics(grads, truth, reps=400, seed=int(rng.integers(1 << 30)))
        covered += result["squared_bias"]["low"][0] <= 0 <= result["squared_bias"]["high"][0]
        draws = gradient_stats.bootstrap_draws(grads, truth, 0.0, gradient_stats.resample_counts(30, 400, 0))
        plain += np.quantile(draws["squared_bias"][:, 0], 0.025) <= 0
    assert covered >= 0.85 * experiments and plain < 0.5 * experiments, (covered, plain)


def test_the_initial_policy_is_the_one_training_began_from(run_folder):
    config = loading.load_run_config(run_folder, 0)
    seed = loading.load_summary(run_folder)["runs"][0]["seed"]
    args = gradients.Args(dir=run_folder, policy="initial")
    params, value_params = gradients.policy_of(args, gradients._checked_folder(args))
    started = jax.vmap(make_trainer(config).init)(jax.vmap(jax.random.key)(jnp.array([seed, seed + 1])),
                                                   jax.tree.map(lambda x: jnp.stack([x, x]),
                                                                config.hparams.as_arrays()))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b[0]), params, started.params)
    assert value_params is None
    final = loading.load_params(run_folder, 0)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(final)))


def test_a_learned_value_is_compared_with_its_final_parameters(learned_folder, tmp_path, capsys):
    assert (learned_folder / VALUE_PARAMS_FILE).is_file()
    value_params = loading.load_value_params(learned_folder, 0)
    assert value_params is not None and jax.tree.leaves(value_params)
    out = tmp_path / "learned.json"
    assert gradients.main([str(learned_folder), *SMALL, "--out", str(out), "--figure", str(tmp_path / "l.png")]) == 0
    names = [entry["name"] for entry in json.loads(out.read_text())["weightings"]]
    assert names[0] == "run" and {"value", "gae_0.9", "gae_0.95", "gae_0.99"} <= set(names)
    capsys.readouterr()
    folder = tmp_path / "older"  # a folder of pgjax 1.0, which kept no value parameters
    shutil.copytree(learned_folder, folder, ignore=shutil.ignore_patterns("gradients.*", VALUE_PARAMS_FILE))
    assert gradients.main([str(folder), *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run 0 weights by a learned value") and "--policy initial" in err and \
        err.count("\n") == 1, err
    assert not (folder / "gradients.json").exists()
    assert gradients.main([str(folder), *SMALL, "--policy", "initial"]) == 0  # the initial value: from its seed


def test_value_params_are_written_for_learned_baselines_only(run_folder, learned_folder, tmp_path):
    assert not (run_folder / VALUE_PARAMS_FILE).exists() and loading.load_value_params(run_folder, 0) is None
    folder = tmp_path / "damaged"
    shutil.copytree(learned_folder, folder)
    (folder / VALUE_PARAMS_FILE).write_bytes(b"\x81\xa6group7\x80")  # msgpack {"group7": {}}
    with pytest.raises(ValueError, match=r"value_params.msgpack holds more than parameters of groups group0; the "):
        loading.load_value_params(folder, 0)


def test_ones_own_weighting_is_compared_on_the_same_episodes(run_folder, tmp_path):
    out = tmp_path / "own.json"
    assert gradients.main([str(run_folder), *SMALL, "--compare", "tests.custom:returns_to_go", "--out", str(out),
                           "--figure", str(tmp_path / "own.png")]) == 0
    entries = {entry["name"]: entry for entry in json.loads(out.read_text())["weightings"]}
    own, builtin = entries["tests.custom:returns_to_go"], entries["reward_to_go"]  # the same weights, by hand
    for statistic in ("episode_variance", "update_variance", "cosine"):
        assert own[statistic]["point"] == pytest.approx(builtin[statistic]["point"], rel=1e-5)


def test_out_writes_exactly_there_and_over_no_users_file(run_folder, tmp_path, capsys):
    out, figure = tmp_path / "mine.json", tmp_path / "mine.png"
    assert gradients.main([str(run_folder), "--episodes", "8", "--reference-batches", "1", "--resamples", "20",
                           "--out", str(out), "--figure", str(figure)]) == 0
    assert json.loads(out.read_text())["episodes"] == 8 and figure.stat().st_size > 0
    capsys.readouterr()
    users = tmp_path / "users.json"
    users.write_text('{"mine": 1}')
    assert gradients.main([str(run_folder), *SMALL, "--out", str(users)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {users} is an existing file") and err.count("\n") == 1
    assert users.read_text() == '{"mine": 1}'


BAD_INPUT = [
    ["/no/such/folder"], ["{run}", "--episodes", "1"], ["{run}", "--run", "5"], ["{run}", "--reference-batches", "0"],
    ["{run}", "--resamples", "0"], ["{run}", "--figure", "{tmp}/figure.txt"], ["{run}", "--out", "/no/such/dir/g.json"],
    ["{run}", "--out", "{tmp}/same.png", "--figure", "{tmp}/same.png"], [], ["{run}", "--episodes"],
    ["{run}", "--episodes", "3"], ["{run}", "--batch-episodes", "0"], ["{run}", "--episodes", "16", "--batch-episodes",
                                                                       "9"],
    ["{run}", "--compare", "no_function"], ["{run}", "--compare", "tests.custom:no_such_function"],
    ["{run}", "--policy", "halfway"],
]


@pytest.mark.parametrize("argv", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, run_folder, tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder, ignore=shutil.ignore_patterns("gradients.*"))
    before = sorted(p.name for p in folder.iterdir())
    argv = [a.format(tmp=tmp_path, run=folder) for a in argv]
    assert gradients.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in folder.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_episodes_beyond_the_free_memory_are_refused_before_any_work(run_folder, tmp_path, monkeypatch, capsys):
    from pgjax.running import devices

    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder, ignore=shutil.ignore_patterns("gradients.*"))
    monkeypatch.setattr(devices, "host_available_bytes", lambda: 10**6)
    assert gradients.main([str(folder), "--episodes", "1024"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --episodes 1,024 of a policy of 58 parameters would need about ") and \
        err.count("\n") == 1, err
    assert not (folder / "gradients.json").exists()


def test_help_answers_before_importing_jax():
    report, output = _run("pgjax.gradients", ["--help"])
    assert report == {"jax": False, "flax": False, "code": 0}, output
    assert "--reference-batches" in output and "--policy" in output and "--compare" in output
