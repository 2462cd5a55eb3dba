"""The presets: what a ``TrainConfig`` field holds when the user does not set it, per env family and algorithm.

One place resolves them (:func:`preset_fields`), for the Python API and the CLI alike: a field the user gives
wins; otherwise, from the most specific layer down,

1. the (env family, algorithm) preset (:data:`ENV_ALGO_PRESETS`),
2. the algorithm's own presets (its row in the algorithm table, ``AlgoSpec.presets``: its reference code's
   defaults, e.g. MAVEN's recurrent agent),
3. the env family's preset (:data:`ENV_PRESETS`: the configuration of the library that defines the task),
4. the ``TrainConfig`` default.

``mixer_kwargs`` / ``loss_kwargs`` merge key by key (a user's ``mixer_kwargs={"a": 1}`` keeps a preset's
``{"b": 2}``). Each preset carries one citation line; the measurements behind them are in docs/PRESETS.md,
whose table :func:`presets_markdown` generates (tests/test_presets.py checks that the page matches).

Pure Python: importing this module imports neither torch nor the algorithms' code.
"""

from __future__ import annotations

from typing import Any

MERGED_FIELDS = ("mixer_kwargs", "loss_kwargs")
"""Dict fields whose keys merge across layers instead of replacing the whole dict."""

# EPyMARL's QMIX/VDN defaults (uoe-agents/epymarl src/config/default.yaml, algs/qmix.yaml, envs/gymma.yaml),
# one gradient step on 32 episodes per collected episode, vectorized as 10 envs and 10 steps per batch.
_EPYMARL = dict(agent="mlp", hidden=(64, 64), agent_id=True, optimizer="adam", lr=5e-4, grad_clip=10.0,
                double_q=True, standardise_rewards=True, eps_start=1.0, eps_end=0.05, eps_frames=50_000,
                target_update=200, num_envs=10, updates_per_batch=10, eval_every=50_000, eval_episodes=100)

ENV_PRESETS: dict[str, dict[str, Any]] = {
    # BenchMARL 1.5 off-policy VMAS shape (conf/experiment/base_experiment.yaml), 200 instead of 1000 updates.
    "vmas": dict(num_envs=60, frames_per_batch=6000, updates_per_batch=200, batch_size=128, hidden=(256, 256),
                 agent_id=False, eval_every=30_000),
    # pymarl/EPyMARL recurrent agents on episode batches (pymarl src/config/default.yaml, algs/qmix.yaml).
    "pettingzoo": dict(agent="gru", hidden=(64,), num_envs=32, frames_per_batch=800, batch_size=800,
                       updates_per_batch=32, buffer_size=125_000, target_update=200, eps_frames=50_000,
                       eps_end=0.05),
    # EPyMARL's defaults on LBF (50-step episodes).
    "lbf": dict(_EPYMARL, frames_per_batch=500, batch_size=32 * 50, buffer_size=5000 * 50),
    # EPyMARL's defaults on RWARE (500-step episodes), a buffer of 400 episodes instead of 5000 (memory).
    "rware": dict(_EPYMARL, frames_per_batch=5000, batch_size=32 * 500, buffer_size=400 * 500),
    # JaxMARL's QMIX-RNN for SMAX (FLAIROx/JaxMARL baselines/QLearning/config/alg/ql_rnn_smax.yaml).
    "smax": dict(agent="gru", hidden=(512, 512), agent_id=True, optimizer="adam", lr=5e-5, grad_clip=10.0,
                 num_envs=16, frames_per_batch=16 * 128, seq_len=128, batch_size=32 * 128, updates_per_batch=8,
                 buffer_size=2000 * 128, target_update=80, eps_start=1.0, eps_end=0.05, eps_frames=1_000_000,
                 learning_starts=10_000, eval_every=204_800, eval_episodes=32, reward_scale=10.0),
}
"""Per environment family: the configuration of the library the task comes from."""

ENV_ALGO_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # JaxMARL's MIXER_INIT_SCALE 0.001 (baselines/QLearning/qmix_rnn.py).
    ("smax", "qmix"): dict(mixer_kwargs={"init_scale": 0.001}),
    # wjh720/QPLEX's matrix-game run (config/algs/qplex.yaml + default.yaml; README: --env-config=matrix_game_2).
    ("matrix", "qplex"): dict(optimizer="rmsprop", lr=5e-4, batch_size=32, buffer_size=5000, target_update=200,
                              grad_clip=10.0),
    # EPyMARL's IQL (src/config/algs/iql.yaml): GRU-128 agents, Adam 3e-4, ε annealed over 200k steps.
    ("lbf", "iql"): dict(agent="gru", hidden=(128,), lr=3e-4, eps_frames=200_000),
    ("rware", "iql"): dict(agent="gru", hidden=(128,), lr=3e-4, eps_frames=200_000),
    # Q_jt on the agents' observations (loss.features): the optimum of the QTRAN game on 5/5 seeds.
    ("matrix", "qtran"): dict(loss_kwargs={"features": "obs"}),
    ("matrix", "qtran-alt"): dict(loss_kwargs={"features": "obs"}),
    # JaxMARL's PQN-VDN for SMAX (baselines/QLearning/config/alg/pqn_vdn_rnn_smax.yaml).
    ("smax", "pqn-vdn"): dict(agent="gru", hidden=(512, 512), num_envs=128, frames_per_batch=128 * 128, lr=2.5e-4,
                              gamma=0.99, td_lambda=0.85, eps_end=0.01, reward_scale=10.0,
                              loss_kwargs={"norm": "batch_norm", "norm_input": True, "memory_window": 4,
                                           "lr_linear_decay": True}),
    # The MPE config (algorithm layer) with γ, λ of JaxMARL's SMAX config (100-step episodes, VMAS's max_steps).
    ("vmas", "pqn-vdn"): dict(gamma=0.99, td_lambda=0.85, bootstrap_time_limits=True),
    # Ours: the QTRAN game's least-squares fit within 0.57 in 40 updates under uniform exploration (tests/test_pqn.py).
    ("matrix", "pqn-vdn"): dict(num_envs=128, frames_per_batch=512, hidden=(64, 64), gamma=0.99,
                                loss_kwargs={"num_minibatches": 4, "lr_linear_decay": True}),
}
"""Per (env family, algorithm): options of one algorithm's modules on one family."""


def family_of(env: str) -> str:
    """``"vmas"`` of ``"vmas/balance"``."""
    return str(env).split("/", 1)[0]


def preset_layers(algo: str, env: str, algo_presets: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The preset layers for ``(algo, env)``, least specific first: family, algorithm, (family, algorithm)."""
    family = family_of(env)
    return [ENV_PRESETS.get(family, {}), dict(algo_presets or {}), ENV_ALGO_PRESETS.get((family, algo), {})]


def merge_layers(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Later layers win; :data:`MERGED_FIELDS` merge key by key.

    Examples:
        >>> merge_layers([{"lr": 1.0, "mixer_kwargs": {"a": 1}}, {"mixer_kwargs": {"b": 2}}, {"lr": 2.0}])
        {'lr': 2.0, 'mixer_kwargs': {'a': 1, 'b': 2}}
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in MERGED_FIELDS and isinstance(value, dict):
                value = {**merged.get(key, {}), **value}
            merged[key] = value
    return merged


def preset_fields(algo: str, env: str, algo_presets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every field the presets set for ``(algo, env)`` (:func:`merge_layers` of :func:`preset_layers`)."""
    return merge_layers(preset_layers(algo, env, algo_presets))


def presets_markdown(algo_presets: dict[str, dict[str, Any]]) -> str:
    """The presets as Markdown tables (docs/PRESETS.md): per family, per algorithm, per (family, algorithm).

    ``algo_presets``: each algorithm's own presets (``{name: AlgoSpec.presets}``).
    """

    def fmt(fields: dict[str, Any]) -> str:
        return ", ".join(f"`{k}={_fmt_value(v)}`" for k, v in fields.items()) or "(the defaults)"

    lines = ["| env family | fields |", "| --- | --- |"]
    lines += [f"| `{family}` | {fmt(fields)} |" for family, fields in ENV_PRESETS.items()]
    lines += ["", "| algorithm | fields |", "| --- | --- |"]
    lines += [f"| `{name}` | {fmt(fields)} |" for name, fields in sorted(algo_presets.items()) if fields]
    lines += ["", "| env family, algorithm | fields |", "| --- | --- |"]
    lines += [f"| `{family}`, `{algo}` | {fmt(fields)} |" for (family, algo), fields in ENV_ALGO_PRESETS.items()]
    return "\n".join(lines) + "\n"


def _fmt_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value) if isinstance(value, str) else str(value)


__all__ = ["ENV_ALGO_PRESETS", "ENV_PRESETS", "family_of", "merge_layers", "preset_fields", "preset_layers",
           "presets_markdown"]


if __name__ == "__main__":  # python -m torchrl_vd.train.presets: the tables of docs/PRESETS.md
    from torchrl_vd.train.algos import algorithms

    print(presets_markdown({name: spec.presets for name, spec in algorithms().items()}), end="")
