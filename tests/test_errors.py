"""Every misconfiguration is a clear error naming the fix, raised before any work starts: one test per row of
the table in docs/ERRORS.md (each row's example input appears there verbatim)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import torchrl_vd as vd
from torchrl_vd.cli import main as cli_main

DOC = Path(__file__).resolve().parents[1] / "docs" / "ERRORS.md"
C = vd.TrainConfig


def _train(tmp_path, **kw):
    out = tmp_path / "run"
    try:
        vd.train(C(env="matrix/qtran", num_envs=8, frames=64, frames_per_batch=64, progress=False, out_dir=str(out),
                   **kw))
    finally:
        assert not out.exists(), "the error came after the run had started writing"


def _cuda_input():
    # on a machine with GPUs, ask for one more than it has
    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


# (category, example input as written in docs/ERRORS.md, what raises it, the error text it must contain)
ROWS = [
    ("unknown config key", '--set lrr=0.1',
     lambda t: C().with_overrides(["lrr=0.1"]), r"Unknown config key 'lrr'\. Did you mean lr\? Valid keys: "),
    ("unknown config field (API)", 'TrainConfig.from_dict({"lrr": 0.1})',
     lambda t: C.from_dict({"lrr": 0.1}), r"Unknown TrainConfig fields \['lrr'\]; valid fields: "),
    ("value of the wrong type", '--set frames=lots',
     lambda t: C().with_overrides(["frames=lots"]), r"Option 'frames' expects int, got 'lots'"),
    ("dotted key into a non-dict field", '--set lr.x=1',
     lambda t: C().with_overrides(["lr.x=1"]), r"'lr' is not a dict field"),
    ("misspelt mixer option", '--set mixer.mixing_embed_dimm=64',
     lambda t: C().with_overrides(["mixer.mixing_embed_dimm=64"]),
     r"Unknown qmix mixer option 'mixing_embed_dimm'\. Did you mean 'mixing_embed_dim'\? Valid qmix mixer options: "
     r"hypernet_embed, hypernet_layers, init_scale, mixing_embed_dim"),
    ("misspelt loss option", '--algo qtran --set loss.lambda_optt=2',
     lambda t: C(algo="qtran").with_overrides(["loss.lambda_optt=2"]),
     r"Unknown qtran loss option 'lambda_optt'\. Did you mean 'lambda_opt', 'lambda_nopt'\? Valid qtran loss "
     r"options: features, lambda_nopt, lambda_opt, loss_function"),
    ("option value outside its choices", '--set loss.loss_function=huber',
     lambda t: C().with_overrides(["loss.loss_function=huber"]),
     r"Option 'qmix loss\.loss_function' must be one of \['l2', 'smooth_l1', 'l1'\], got 'huber'"),
    ("option for an algorithm without options", '--algo vdn --set mixer.mixing_embed_dim=8',
     lambda t: C(algo="vdn").with_overrides(["mixer.mixing_embed_dim=8"]),
     r"Unknown vdn mixer option 'mixing_embed_dim'\. Valid vdn mixer options: \(none: this part takes no options\)"),
    ("misspelt env argument (VMAS)", '--env vmas/balance --set env_kwargs.n_agnts=4',
     lambda t: vd.make_env("vmas/balance", num_envs=2, n_agnts=4),
     r"vmas/balance does not take the argument\(s\) 'n_agnts' \(did you mean 'n_agents'\?\)\. Valid env_kwargs for "
     r"vmas/balance: n_agents, package_mass, random_package_pos_on_line, max_steps, "),
    ("misspelt env argument (matrix)", '--env matrix/m-step --set env_kwargs.stps=3',
     lambda t: vd.make_env("matrix/m-step", num_envs=2, stps=3),
     r"matrix/m-step got unexpected keyword argument\(s\) stps; it accepts steps, initial_branch"),
    ("misspelt env argument (PettingZoo)", '--env pettingzoo/simple_spread_v3 --set env_kwargs.n_agnts=3',
     lambda t: vd.make_env("pettingzoo/simple_spread_v3", num_envs=2, n_agnts=3),
     r"pettingzoo/simple_spread_v3 does not take the argument\(s\) given in env_kwargs \['n_agnts'\]: .*"
     r"unexpected keyword argument 'n_agnts'"),
    ("env argument out of range (simulator assert)", '--env vmas/balance --set env_kwargs.n_agents=1',
     lambda t: vd.make_env("vmas/balance", num_envs=2, n_agents=1),
     r"vmas/balance rejected its arguments \{'n_agents': 1\} \(num_envs=2\): `assert self\.n_agents > 1` failed "
     r"\(balance\.py:\d+\)"),
    ("env argument out of range (simulator error)", '--env pettingzoo/simple_spread_v3 --set env_kwargs.N=0',
     lambda t: vd.make_env("pettingzoo/simple_spread_v3", num_envs=2, N=0),
     r"pettingzoo/simple_spread_v3 rejected its arguments \{'N': 0\} \(num_envs=2\): the simulator raised ValueError"),
    ("env argument out of range (adapter check)", '--env matrix/m-step --set env_kwargs.steps=0',
     lambda t: vd.make_env("matrix/m-step", num_envs=2, steps=0), r"m-step: steps must be an integer >= 2, got 0"),
    ("continuous actions", '--env vmas/balance --set env_kwargs.continuous_actions=true',
     lambda t: vd.make_env("vmas/balance", num_envs=2, continuous_actions=True),
     r"Value decomposition needs discrete actions.*drop continuous_actions=True"),
    ("unknown environment", '--env matrix/qtrn',
     lambda t: vd.make_env("matrix/qtrn"), r"Unknown matrix task 'qtrn'\. Did you mean: qtran\?"),
    ("unknown algorithm", '--algo qmx',
     lambda t: _train(t, algo="qmx"), r"Unknown algo 'qmx'\. Did you mean qmix, ow-qmix, cw-qmix\? Registered: "),
    ("device not available (CUDA)", f'--set device={_cuda_input()}',
     lambda t: _train(t, device=_cuda_input()), r"device='cuda(:\d+)?', but .*(no CUDA|CUDA GPU\(s\)).*"),
    ("device not available (MPS)", '--set device=mps',
     lambda t: _train(t, device="mps"), r"device='mps', but MPS \(Apple GPUs\) is not available on this machine: "
                                        r"use device='cpu'"),
    ("not a device", '--set device=gpu',
     lambda t: C(device="gpu"), r"device 'gpu' is not a device name: use 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    ("minibatch larger than the buffer", '--set batch_size=256 --set buffer_size=100',
     lambda t: C(batch_size=256, buffer_size=100),
     r"batch_size \(256\) exceeds buffer_size \(100\): .* lower batch_size or raise buffer_size"),
    ("fewer frames than one batch", '--frames 1000 --set frames_per_batch=3200',
     lambda t: C(frames=1000, frames_per_batch=3200),
     r"frames \(1000\) is less than one batch \(frames_per_batch=3200\): set frames >= 3200"),
    ("batch not a multiple of the envs", '--set num_envs=32 --set frames_per_batch=1000',
     lambda t: C(num_envs=32, frames_per_batch=1000),
     r"frames_per_batch \(1000\) must be divisible by num_envs \(32\), e\.g\. frames_per_batch=992"),
    ("batch not a multiple of workers x envs", '--set collector=multi --set num_workers=2 --set num_envs=32 '
                                               '--set frames_per_batch=96',
     lambda t: C(num_envs=32, frames_per_batch=96, collector="multi", num_workers=2),
     r"with collector='multi', frames_per_batch \(96\) must be divisible by num_workers \* num_envs \(2 \* 32\)"),
    ("sequence length vs batch time steps", '--set agent=gru --set seq_len=7 (100 steps per batch)',
     lambda t: C(agent="gru", num_envs=32, frames_per_batch=3200, seq_len=7),
     r"seq_len \(7\) must divide the time steps per batch \(frames_per_batch / num_envs = 100\): e\.g\. seq_len=5"),
    ("burn-in vs sequence length", '--set agent=gru --set seq_len=10 --set burn_in=10',
     lambda t: C(agent="gru", num_envs=32, frames_per_batch=3200, seq_len=10, burn_in=10),
     r"burn_in \(10\) must be shorter than the training sequences \(seq_len 10\)"),
    ("minibatch shorter than one sequence", '--set agent=gru --set batch_size=64 (100 steps per batch)',
     lambda t: C(agent="gru", num_envs=32, frames_per_batch=3200, batch_size=64),
     r"batch_size \(64\) holds no whole sequence of seq_len 100 .* raise batch_size to >= 100"),
    ("recurrent options on an MLP agent", '--set last_action=true --set burn_in=4',
     lambda t: C(last_action=True, burn_in=4),
     r"burn_in=4, last_action=True only apply to recurrent agents \(agent='gru'\), got agent='mlp'"),
    ("learning never starts", '--frames 20000 --set learning_starts=20000',
     lambda t: C(frames=20_000, learning_starts=20_000),
     r"learning_starts \(20000\) >= frames \(20000\): no gradient step would ever run"),
    ("value out of range", '--set lr=-1 --set eps_start=1.5 --set gamma=2',
     lambda t: C(lr=-1, eps_start=1.5, gamma=2),
     r"lr must be > 0 \(got -1\); eps_start must lie in \[0, 1\] \(got 1\.5\); gamma must lie in \[0, 1\] \(got 2\)"),
    ("unknown choice", '--set collector=mpi --set agent=lstm --set optimizer=sgd',
     lambda t: C(collector="mpi", agent="lstm", optimizer="sgd"),
     r"collector must be one of \['single', 'async', 'multi', 'ray'\] \(got 'mpi'\); agent must be 'mlp' or 'gru' "
     r"\(got 'lstm'\); optimizer must be 'adam', 'rmsprop' or 'radam' \(got 'sgd'\)"),
    ("unknown learning choice", '--set standardise_rewards=episode --set activation=gelu',
     lambda t: C(standardise_rewards="episode", activation="gelu"),
     r"standardise_rewards must be False, 'running' \(or True\) or 'batch' \(got 'episode'\); activation must be "
     r"one of \['elu', 'relu', 'tanh'\] \(got 'gelu'\)"),
    ("algorithm vs agent", '--algo maven --set agent=mlp',
     lambda t: C(algo="maven", agent="mlp"),
     r"algo 'maven' supports agent in \['gru'\], got agent='mlp': set agent='gru'"),
    ("algorithm vs collector", '--algo maven --set collector=multi',
     lambda t: C(algo="maven", agent="gru", collector="multi", frames_per_batch=3200, num_envs=32),
     r"MAVEN's learned z-policy .* Use collector='single' or loss_kwargs\.z_policy='uniform'"),
    ("replay-buffer option for PQN-VDN", '--algo pqn-vdn --set buffer_size=5000',
     lambda t: C(algo="pqn-vdn", buffer_size=5000),
     r"buffer_size=5000 does not apply to 'pqn-vdn': PQN keeps no replay buffer, each update learns from its own "
     r"rollout \(frames_per_batch = num_envs x steps per env\); drop it"),
    ("PQN-VDN minibatches", '--algo pqn-vdn --set agent=gru --set num_envs=10 --set frames_per_batch=40',
     lambda t: C(algo="pqn-vdn", agent="gru", num_envs=10, frames_per_batch=40),
     r"loss\.num_minibatches \(16\) must divide num_envs \(10\): the recurrent variant splits the envs into "
     r"minibatches; set loss\.num_minibatches=10 or num_envs=16"),
    ("run directory already holds a run", 'torchrl-vd train --out DIR (DIR holds a run)',
     lambda t: _existing_run(t), r"already holds a run \(metrics\.csv\); not overwriting it\. Continue it with "
                       r"`torchrl-vd train --resume"),
    ("resume past the end", 'torchrl-vd train --resume DIR (DIR finished)',
     lambda t: _finished_run(t), r"already reached 128 frames \(frames=128\); raise it with --set frames=N"),
]


def _existing_run(tmp_path):
    (tmp_path / "metrics.csv").write_text("frames\n")
    vd.train(C(env="matrix/qtran", progress=False, out_dir=str(tmp_path)))


def _finished_run(tmp_path):
    out = tmp_path / "done"
    vd.train(C(env="matrix/qtran", num_envs=8, frames=128, frames_per_batch=64, updates_per_batch=1, batch_size=16,
               progress=False, out_dir=str(out), eval_episodes=2))
    vd.train(vd.train_config_for_resume(out))


@pytest.mark.parametrize("category, example, make, message", ROWS, ids=[r[0] for r in ROWS])
def test_misconfiguration_is_a_clear_error(tmp_path, category, example, make, message):
    if category == "device not available (MPS)" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises((ValueError, FileExistsError)) as err:
        make(tmp_path)
    assert re.search(message, str(err.value), flags=re.S), str(err.value)


def test_every_row_is_in_the_docs_table():
    doc = DOC.read_text()
    for category, example, *_ in ROWS:
        example = example.replace(_cuda_input(), "cuda") if "device not available (CUDA)" == category else example
        assert f"| {category} | `{example}` |" in doc, category


def test_the_cli_reports_them_without_a_traceback(tmp_path, capsys):
    assert cli_main(["train", "--algo", "qmix", "--env", "matrix/qtran", "--out", str(tmp_path / "x"), "--quiet",
                     "--set", "batch_size=256", "--set", "buffer_size=100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("torchrl-vd train: error: Invalid TrainConfig: batch_size (256) exceeds buffer_size (100)")
