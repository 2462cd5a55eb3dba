"""One config truth: the same words give the same config from Python and from the CLI, for every registered
algorithm and env family; the presets page is the code's; the matrix presets reach what they were chosen for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import torchrl_vd as vd
from torchrl_vd.cli import _parser, config_from_args
from torchrl_vd.envs.registry import env_families
from torchrl_vd.train.algos import algorithms
from torchrl_vd.train.config import ConfigError
from torchrl_vd.train.presets import ENV_ALGO_PRESETS, ENV_PRESETS, presets_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "PRESETS.md"
PAIRS = [(algo, f"{family}/{fam.examples[0]}") for algo in sorted(algorithms())
         for family, fam in sorted(env_families().items())]


def cli_config(*argv: str) -> vd.TrainConfig:
    return config_from_args(_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("algo, env", PAIRS)
def test_python_and_cli_give_the_same_config(algo, env):
    assert vd.TrainConfig(algo=algo, env=env).to_dict() == cli_config("--algo", algo, "--env", env).to_dict()


def test_explicit_fields_win_and_option_dicts_merge_key_by_key():
    cfg = vd.TrainConfig(algo="qmix", env="smax/3m", lr=1e-3, mixer_kwargs={"mixing_embed_dim": 64})
    assert cfg.lr == 1e-3 and cfg.hidden == (512, 512)  # given / preset
    assert cfg.mixer_kwargs == {"init_scale": 0.001, "mixing_embed_dim": 64}
    assert cli_config("--algo", "qmix", "--env", "smax/3m", "--lr", "1e-3", "--set", "mixer.mixing_embed_dim=64") == cfg
    # the algorithm's preset (MAVEN: a recurrent agent fed its last action) over the family's, under the user's
    assert vd.TrainConfig(algo="maven", env="vmas/balance").agent == "gru"
    assert vd.TrainConfig(algo="maven", env="vmas/balance", hidden=[32]).hidden == (32,)


def test_overrides_start_from_the_given_fields_and_a_saved_config_stays_as_saved():
    cfg = vd.TrainConfig(algo="qmix", env="vmas/balance").with_overrides({"env": "matrix/qtran"})
    assert cfg.hidden == vd.TrainConfig(env="matrix/qtran").hidden == (64, 64)  # the vmas preset left with vmas
    saved = vd.TrainConfig(algo="qmix", env="smax/3m").to_dict()
    saved["mixer_kwargs"] = {}  # a run saved without the key: read back, no preset adds it
    assert vd.TrainConfig.from_dict(saved).mixer_kwargs == {}


def test_every_problem_is_reported_at_once_misspelt_names_first():
    with pytest.raises(ConfigError) as err:
        vd.TrainConfig(algo="qmixx", frames=100, lrr=0.1)
    problems = err.value.problems
    assert problems[0].startswith("Unknown TrainConfig field 'lrr'. Did you mean 'lr'?")
    assert problems[1].startswith("Unknown algo 'qmixx'. Did you mean qmix")
    assert any(p.startswith("frames (100) is less than one batch") for p in problems)
    with pytest.raises(ValueError) as err:  # the CLI path: unknown --set keys and bad values together
        cli_config("--algo", "qmixx", "--set", "lrr=1", "--set", "frames=lots")
    assert re.search(r"Unknown config key 'lrr'.*Option 'frames' expects int.*Unknown algo 'qmixx'", str(err.value))


def test_fixed_choices_are_literal_types_listed_by_help(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines (also at hyphens)
    for listed in ("Choices:single,async,multi,ray.", "Choices:adam,rmsprop,radam.", "Choices:mlp,gru.",
                   "Choices:relu,tanh,elu.", f"Choices:{','.join(sorted(algorithms()))}."):
        assert listed in text


def test_the_presets_page_is_generated_from_the_code():
    page = DOC.read_text()
    table = page.split("<!-- presets:begin -->\n")[1].split("<!-- presets:end -->")[0]
    assert table == presets_markdown({name: spec.presets for name, spec in algorithms().items()})
    sources = page.split("<!-- presets:end -->")[1]  # each preset's source and measurements, in prose
    for family in ENV_PRESETS:
        assert f"`{family}`" in sources, family
    for family, algo in ENV_ALGO_PRESETS:
        assert f"`{algo}`" in sources, (family, algo)


def test_maven_trains_from_the_python_api_with_the_words_of_the_cli(tmp_path):
    """The form docs/CONTRACT.md gives: vd.train(vd.TrainConfig(algo="maven", env="matrix/m-step"))."""
    result = vd.train(vd.TrainConfig(algo="maven", env="matrix/m-step", env_kwargs={"steps": 3}, num_envs=8,
                                     frames=8 * 4 * 2, frames_per_batch=32, batch_size=8, updates_per_batch=1,
                                     eval_episodes=2, progress=False, out_dir=str(tmp_path / "maven")))
    assert result.summary["frames"] == 64 and result.loss_module.agent_net.is_recurrent
    assert 0.0 <= result.summary["final_eval_return"] <= 3 + 3  # the m-step game's returns lie in [0, m + 3]
