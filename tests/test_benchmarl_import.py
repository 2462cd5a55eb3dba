"""The BenchMARL import (train/benchmarl_import.py, train/benchmarl_files.py) on BenchMARL 1.5.2's own yaml files.

The files come from BenchMARL's release (tests/_benchmarl.py: $TORCHRL_VD_BENCHMARL_CONF, else the sdist that pip
downloads into .cache/); the fine-tuned VMAS config comes from BenchMARL's repository ($TORCHRL_VD_BENCHMARL_REPO,
else GitHub). A test whose files cannot be found skips, saying why.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import torchrl_vd as vd
from torchrl_vd.cli import main as cli_main
from torchrl_vd.reproduce import load_suite, suite_runs
from torchrl_vd.reproduce import suites
from torchrl_vd.train.benchmarl_files import import_benchmarl, load_yaml
from torchrl_vd.train.benchmarl_import import (ALGORITHM_KEYS, EXPERIMENT_KEYS, MODEL_KEYS, BenchmarlImportError,
                                               BenchmarlImportWarning, mapping_markdown)
from torchrl_vd.train.presets import preset_fields

from _benchmarl import conf_dir, fine_tuned_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "COMING_FROM_BENCHMARL.md"
QMIX_BALANCE = ("algorithm=qmix", "task=vmas/balance")


@pytest.fixture(scope="module")
def conf() -> Path:
    path, why = conf_dir()
    if path is None:
        pytest.skip(why)
    return path


def _import(*sources) -> dict:
    """The imported fields; a warning is an error here unless the test expects it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", BenchmarlImportWarning)
        return import_benchmarl(*map(str, sources))


def _diff(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def test_benchmarls_defaults_import_field_by_field(conf):
    # base_experiment + qmix + vmas/balance + layers/mlp, every value worked out from BenchMARL 1.5.2's code
    expected = dict(
        algo="qmix", env="vmas/balance", seed=0,
        env_kwargs={"max_steps": 100, "n_agents": 4, "random_package_pos_on_line": True, "package_mass": 5,
                    "team_reward": "mean"},  # Qmix.process_batch: the team reward is the agents' mean
        bootstrap_time_limits=False,  # VmasEnv: the time limit is `terminated`
        num_envs=10, frames_per_batch=6000, frames=3_000_000, updates_per_batch=1000, batch_size=128,
        buffer_size=1_000_000, learning_starts=0,
        gamma=0.99, lr=5e-5, optimizer="adam", optimizer_eps=1e-6, grad_clip=5.0, target_update=0.005, double_q=False,
        eps_start=0.8, eps_end=0.01, eps_frames=1_000_000,  # null anneal frames: 3M // 3
        share_params=True, device="cpu", eval_every=120_000, eval_episodes=10, checkpoint_every=0,
        loggers=("wandb",),  # [csv, wandb]: metrics.csv is always written
        reward_scale=1.0, standardise_rewards=False, td_lambda=None,
        mixer_kwargs={"mixing_embed_dim": 32, "hypernet_layers": 1},  # torchrl's QMixer: one-layer hypernetworks
        loss_kwargs={"loss_function": "l2"},
        agent="mlp", hidden=(256, 256), activation="tanh", agent_id=False,
    )
    fields = _import(conf, *QMIX_BALANCE)
    assert _diff(fields, expected) == []
    cfg = vd.TrainConfig.from_benchmarl(str(conf), *QMIX_BALANCE)
    assert {k: getattr(cfg, k) for k in expected} == expected


@pytest.mark.parametrize("task, algo", [(e["task"], e["algo"]) for e in suites.VMAS["entries"]])
def test_the_reproduce_vmas_suite_is_the_import_of_benchmarls_yaml(conf, tmp_path, task, algo):
    # the reference run's changes on BenchMARL's own files give each run of `torchrl-vd reproduce vmas` exactly
    changes = [f"{k}={json.dumps(v)}" for k, v in suites.BENCHMARL_VMAS_CHANGES.items()]
    for run in suite_runs(load_suite("vmas", tasks=[task], algos=[algo]), tmp_path):
        imported = vd.TrainConfig.from_benchmarl(str(conf), f"algorithm={algo}", f"task={task}", *changes,
                                                 f"seed={run.seed}")
        imported = imported.with_overrides({"out_dir": str(run.run_dir), "progress": False, "threads": 1})
        assert _diff(imported.to_dict(), run.config.to_dict()) == []


def test_the_fine_tuned_vmas_config(conf):
    path, why = fine_tuned_config()
    if path is None:
        pytest.skip(why)
    fields = _import(conf, path, *QMIX_BALANCE)
    # fine_tuned/vmas/conf/config.yaml's experiment block over base_experiment.yaml
    assert fields["gamma"] == 0.9 and fields["updates_per_batch"] == 1000 and fields["num_envs"] == 60
    # max_n_frames 10M is 1666.7 batches of 6000: BenchMARL runs 1667 (get_max_n_iters rounds up)
    assert fields["frames"] == 10_002_000 and fields["eps_frames"] == 1_000_000 and fields["frames_per_batch"] == 6000
    assert fields["eval_episodes"] == 200 and fields["eval_every"] == 120_000 and fields["device"] == "cuda"
    assert fields["loggers"] == ("wandb",) and fields["batch_size"] == 128 and fields["buffer_size"] == 1_000_000
    assert fields["optimizer_eps"] == 1e-6 and fields["lr"] == 5e-5  # adam_eps is not in the file: the base's


def test_the_four_ways_to_give_the_files_agree(conf, tmp_path):
    by_dir = _import(conf, *QMIX_BALANCE, "seed=3")
    files = [conf / "experiment/base_experiment.yaml", conf / "algorithm/qmix.yaml", conf / "task/vmas/balance.yaml",
             conf / "model/layers/mlp.yaml"]
    assert _import(*files, "seed=3") == by_dir
    # a Hydra run directory: the composed config (types as Hydra writes them) and the choices in hydra.yaml
    yaml = pytest.importorskip("yaml")
    hydra = tmp_path / "outputs" / ".hydra"
    hydra.mkdir(parents=True)
    composed = {g: {k: v for k, v in load_yaml(f).items() if k != "defaults"}
                for g, f in zip(("experiment", "algorithm", "task", "model"), files)}
    composed["experiment"]["clip_grad_val"] = 5.0
    composed["task"]["package_mass"] = 5.0
    (hydra / "config.yaml").write_text(yaml.safe_dump({**composed, "seed": 3}))
    choices = {"algorithm": "qmix", "task": "vmas/balance", "model": "layers/mlp", "experiment": "base_experiment"}
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    assert _import(hydra.parent) == by_dir
    (hydra / "hydra.yaml").unlink()
    with pytest.raises(BenchmarlImportError, match=r"no algorithm and no task chosen: add algorithm=NAME task=NAME"):
        _import(hydra.parent)
    assert _import(hydra.parent, *QMIX_BALANCE) == by_dir


def test_budgets_anneal_and_recurrent_layout(conf):
    f = _import(conf, *QMIX_BALANCE, "experiment.max_n_frames=7000", "experiment.lr=1e-4")
    assert (f["frames"], f["eps_frames"], f["lr"]) == (12_000, 2_333, 1e-4)  # 2 whole iterations; 7000 // 3; '1e-4'
    f = _import(conf, *QMIX_BALANCE, "experiment.max_n_frames=null", "experiment.max_n_iters=3",
                "experiment.soft_target_update=false")
    assert (f["frames"], f["eps_frames"], f["target_update"]) == (18_000, 6_000, 5)
    with pytest.warns(BenchmarlImportWarning) as caught:
        f = import_benchmarl(str(conf), "algorithm=iql", "task=pettingzoo/simple_spread", "model=layers/gru")
    assert [str(w.message).split(":")[0] for w in caught] == ["model.mlp_num_cells", "model"]
    assert (f["agent"], f["hidden"], f["seq_len"], f["burn_in"]) == ("gru", (256, 256, 128), 600, 0)
    assert (f["batch_size"], f["buffer_size"]) == (600, 1_000_200)  # ⌈128 / 600⌉ and ⌈1e6 / 600⌉ sequences of 600
    assert f["env"] == "pettingzoo/simple_spread_v3" and f["bootstrap_time_limits"] is True
    assert f["env_kwargs"] == {"N": 3, "local_ratio": 0.5, "max_steps": 100, "team_reward": "mean"}
    assert f["loss_kwargs"] == {"loss_function": "l2", "rewards": "individual"}  # IQL: DQNLoss per agent


@pytest.mark.parametrize("override, message", [
    ("experiment.gama=0.9", r"experiment\.gama: not a BenchMARL 1\.5\.2 experiment key \(did you mean 'gamma'\?\)"),
    ("experiment.off_policy_use_prioritized_replay=true",
     r"experiment\.off_policy_use_prioritized_replay: not a BenchMARL .* \(did you mean "
     r"'off_policy_use_prioritized_replay_buffer'"),
    ("algorithm.mixing_embed_dimm=64", r"algorithm\.mixing_embed_dimm: .*did you mean 'mixing_embed_dim'"),
    ("model.num_cell=[64]", r"model\.num_cell: .*did you mean 'num_cells'"),
    ("expriment.gamma=0.9", r"'expriment' is not a BenchMARL config group \(did you mean 'experiment'\?\)"),
])
def test_an_unknown_key_is_named_with_its_close_matches(conf, override, message):
    with pytest.raises(BenchmarlImportError, match=message):
        _import(conf, *QMIX_BALANCE, override)


@pytest.mark.parametrize("sources, message", [
    ((*QMIX_BALANCE, "experiment.off_policy_use_prioritized_replay_buffer=true"),
     r"experiment\.off_policy_use_prioritized_replay_buffer: True has no counterpart here"),
    ((*QMIX_BALANCE, "experiment.clip_grad_norm=false"), r"experiment\.clip_grad_norm: false clips each gradient"),
    ((*QMIX_BALANCE, "algorithm.delay_value=false"), r"algorithm\.delay_value: false \(no target networks\) has no"),
    ((*QMIX_BALANCE, "experiment.off_policy_init_random_frames=1000"),
     r"experiment\.off_policy_init_random_frames: 1000 has no counterpart"),
    ((*QMIX_BALANCE, "model.norm_class=torch.nn.LayerNorm"), r"model\.norm_class: 'torch\.nn\.LayerNorm' has no"),
    ((*QMIX_BALANCE, "model=layers/lstm"), r"model: BenchMARL's 'lstm' model cannot be imported"),
    (("algorithm=mappo", "task=vmas/balance"), r"algorithm: 'mappo' cannot be imported: BenchMARL's value-based "
                                               r"algorithms are qmix, vdn, iql"),
    (("algorithm=vdn", "task=pettingzoo/simple_speaker_listener"),
     r"task: BenchMARL splits the agents of pettingzoo/simple_speaker_listener into the groups speaker, listener"),
    ((*QMIX_BALANCE, "experiment.evaluation_interval=10000"), r"experiment\.evaluation_interval: 10000 is not a "),
    ((*QMIX_BALANCE, "experiment.gamma=0.9,0.99"), r"experiment\.gamma: expects float, got '0\.9,0\.99'"),
])
def test_a_key_that_cannot_be_honoured_is_an_error_naming_it(conf, sources, message):
    with pytest.raises(BenchmarlImportError, match=message):
        _import(conf, *sources)


def test_every_problem_at_once_and_warnings_for_what_only_changes_bookkeeping(conf):
    with pytest.raises(BenchmarlImportError) as err:
        _import(conf, *QMIX_BALANCE, "experiment.gama=1", "algorithm.delay_value=false", "algorithm.loss_function=l1")
    assert [p.split(":")[0] for p in err.value.problems] == ["experiment.gama", "algorithm.delay_value"]
    with pytest.warns(BenchmarlImportWarning) as caught:
        f = import_benchmarl(str(conf), *QMIX_BALANCE, "experiment.loggers=[csv,mlflow]",
                             "experiment.buffer_device=disk", "experiment.evaluation_deterministic_actions=false",
                             "algorithm.loss_function=l1")
    assert sorted(str(w.message).split(":")[0] for w in caught) == [
        "experiment.buffer_device", "experiment.evaluation_deterministic_actions", "experiment.loggers"]
    assert f["loggers"] == () and f["loss_kwargs"] == {"loss_function": "l1"}


def test_the_tables_list_every_key_of_benchmarls_files(conf):
    assert set(load_yaml(conf / "experiment/base_experiment.yaml")) - {"defaults"} == set(EXPERIMENT_KEYS)
    for name, keys in ALGORITHM_KEYS.items():
        assert set(load_yaml(conf / f"algorithm/{name}.yaml")) - {"defaults"} == set(keys)
    for name, keys in MODEL_KEYS.items():
        assert set(load_yaml(conf / f"model/layers/{name}.yaml")) - {"defaults"} == set(keys)


@pytest.mark.parametrize("algo, task", [("qmix", "vmas/balance"), ("vdn", "pettingzoo/simple_spread"),
                                        ("iql", "vmas/navigation")])
def test_no_preset_reaches_an_imported_config(conf, algo, task):
    fields = _import(conf, f"algorithm={algo}", f"task={task}")
    assert set(preset_fields(algo, fields["env"])) - set(fields) == set()


def test_a_run_from_benchmarls_yaml_through_the_cli(conf, tmp_path):
    out = tmp_path / "run"
    tiny = ["frames=400", "frames_per_batch=200", "num_envs=2", "updates_per_batch=2", "buffer_size=1000",
            "eval_episodes=2", "loggers=[]", "igm_eval=false"]
    argv = ["train", "--benchmarl", str(conf), *QMIX_BALANCE, "experiment.gamma=0.95", "--out", str(out), "--quiet"]
    assert cli_main([*argv, *(a for s in tiny for a in ("--set", s))]) == 0
    assert {"config.json", "metrics.csv", "summary.json", "checkpoint.pt"} <= {p.name for p in out.iterdir()}
    saved = json.loads((out / "config.json").read_text())
    imported = {"gamma": 0.95, "lr": 5e-5, "optimizer_eps": 1e-6, "grad_clip": 5.0, "target_update": 0.005,
                "eps_start": 0.8, "eps_frames": 1_000_000, "double_q": False, "hidden": [256, 256],
                "activation": "tanh",
                "mixer_kwargs": {"mixing_embed_dim": 32, "hypernet_layers": 1}, "bootstrap_time_limits": False,
                "env_kwargs": {"max_steps": 100, "n_agents": 4, "random_package_pos_on_line": True,
                               "package_mass": 5, "team_reward": "mean"}}
    assert _diff({k: saved[k] for k in imported}, imported) == []
    assert (saved["frames"], saved["num_envs"], saved["buffer_size"]) == (400, 2, 1000)  # --set after the import
    assert json.loads((out / "summary.json").read_text())["frames"] == 400


def test_the_cli_prints_the_warnings_and_refuses_resume_with_benchmarl(conf, tmp_path, capsys):
    argv = ["train", "--benchmarl", str(conf), *QMIX_BALANCE, "experiment.buffer_device=disk", "--out",
            str(tmp_path / "r"), "--set", "frames=1"]
    assert cli_main(argv) == 2  # frames=1 is refused after the import
    err = capsys.readouterr().err
    assert "torchrl-vd train: warning: experiment.buffer_device: 'disk'" in err and "frames (1) is less" in err
    assert cli_main(["train", "--benchmarl", str(conf), "--resume", str(tmp_path)]) == 2
    assert "give one" in capsys.readouterr().err


def test_the_doc_shows_the_tables():
    text = DOC.read_text()
    table = text.split("<!-- benchmarl:begin -->\n", 1)[1].split("<!-- benchmarl:end -->", 1)[0]
    assert table == mapping_markdown(), "regenerate with python -m torchrl_vd.train.benchmarl_import"
