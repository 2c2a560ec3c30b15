"""Each setting is declared once, in TrainConfig's field metadata: the launch options, RESUMABLE and
the checkpoint fingerprint are derived from it, and stay what they were when written by hand."""

import dataclasses
import json

import click
import pytest

from sharedgan.cli.launch import LAUNCH_OPTIONS, launch
from sharedgan.config import (
    FINGERPRINT_FIELDS,
    GENERATORS,
    RESUMABLE,
    TrainConfig,
    fingerprint,
    option_flag,
    require_consent,
)

FIELDS = dataclasses.fields(TrainConfig)
CHOICE_FIELDS = [f for f in FIELDS if f.metadata["choices"] is not None]

# the hand-written tuples these replace, the regression reference (and --tensorboard, added since)
RESUMABLE_BEFORE = ("engine", "threads", "eval_every", "checkpoint_every", "keep_checkpoints", "data_dir", "cache_dir",
                    "verify_md5", "signal_timeout", "startup_timeout", "heartbeat_timeout", "on_failure",
                    "max_restarts", "out", "device", "devices", "deterministic", "d_replicas", "c_replicas",
                    "replica_sync", "sync_every", "serve_batch", "serve_lr_scaling", "tensorboard",
                    "realness",  # realness: added with it (evaluation only, so a resume may change it)
                    "transport",  # transport: how the same roles reach each other (a run may move machines)
                    "pin_roles")  # pin_roles: where the processes run, not what they compute
FINGERPRINT_BEFORE = ("k", "dataset", "ring_modes", "grid_side", "noise_dim", "hidden", "width", "generator_factory",
                      "discriminator_factory", "classifier_factory", "optimizer_generator", "optimizer_discriminator",
                      "optimizer_classifier")
TEACHER_FINGERPRINT = ("teacher_weight", "teacher_term", "teacher_width", "teacher_components")  # with a teacher


def options_by_field():
    return {p.name: p for p in launch.params if isinstance(p, click.Option)}


def run_main(capsys, *args):
    from sharedgan.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return exit_.value.code, capsys.readouterr()


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_every_setting_has_help_and_a_launch_flag(field):
    assert isinstance(field.metadata["help"], str) and field.metadata["help"].strip(), field.name
    assert isinstance(field.type, str), "annotations stay strings (_has_type reads them)"
    option = options_by_field()[field.name]
    assert option_flag(field) in option.opts
    assert option.help.startswith(field.metadata["help"])
    assert option.default is None  # unset options leave the config (or --config's file) as it is
    if field.type == "bool":
        assert option.secondary_opts == ["--no-" + option_flag(field)[2:]]
    if field.metadata["choices"] is not None:
        assert isinstance(option.type, click.Choice) and tuple(option.type.choices) == field.metadata["choices"]


def test_launch_help_lists_every_flag_with_its_default(capsys):
    code, out = run_main(capsys, "launch", "--help")
    assert code == 0
    for field in FIELDS:
        assert option_flag(field) in out.out, field.name
    assert "--lr FLOAT" in out.out and "[default: 0.0002]" in out.out and "[default: parallel]" in out.out


def test_launch_options_follow_the_fields_with_lr_before_the_learning_rates():
    assert [field for _, field, _, _ in LAUNCH_OPTIONS if field] == [f.name for f in FIELDS]
    names = [field for _, field, _, _ in LAUNCH_OPTIONS]
    assert names[names.index("lr_generator") - 1] is None  # --lr


def test_resumable_and_fingerprint_are_what_they_were():
    assert set(RESUMABLE) == set(RESUMABLE_BEFORE) and len(RESUMABLE) == len(RESUMABLE_BEFORE)
    before = FINGERPRINT_BEFORE + TEACHER_FINGERPRINT
    assert set(FINGERPRINT_FIELDS) == set(before) and len(FINGERPRINT_FIELDS) == len(before)
    assert not set(RESUMABLE) & set(FINGERPRINT_FIELDS)


def test_fingerprint_is_the_same_dict():
    """Without a teacher, the manifest's fingerprint is what it was before the teacher existed, so
    every earlier run still resumes; with one, the teacher's settings join it."""
    config = TrainConfig(k=3, dataset="mnist", optimizer_classifier="sgd").validate()
    assert fingerprint(config) == {name: getattr(config, name) for name in FINGERPRINT_BEFORE}
    taught = TrainConfig(k=3, teacher_weight=0.5).validate()
    assert fingerprint(taught) == {name: getattr(taught, name) for name in FINGERPRINT_BEFORE + TEACHER_FINGERPRINT}


def test_a_run_config_json_loads_back():
    config = TrainConfig(k=3, engine="sequential", cache_dir="c").validate()
    assert TrainConfig.from_dict(dataclasses.asdict(config)) == config


@pytest.mark.parametrize("field", CHOICE_FIELDS, ids=[f.name for f in CHOICE_FIELDS])
def test_a_bad_choice_is_refused_on_the_command_line(capsys, tmp_path, field):
    code, out = run_main(capsys, "launch", "--out", str(tmp_path / "r"), option_flag(field), "no-such-choice")
    assert code == 2
    assert "'no-such-choice' is not one of" in out.err and len(out.err.strip().splitlines()) == 1, out.err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("field", CHOICE_FIELDS, ids=[f.name for f in CHOICE_FIELDS])
def test_a_bad_choice_is_refused_by_validate(field):
    with pytest.raises(Exception, match=f"^{option_flag(field)} must be one of"):
        TrainConfig(**{field.name: "no-such-choice"}).validate()


class Captured(Exception):
    pass


def test_every_flag_lands_in_its_field(capsys, tmp_path, monkeypatch):
    """One launch with every flag given a value other than the default: each reaches its field."""
    given, args = {}, []
    for field in FIELDS:
        default, flag = field.default, option_flag(field)
        if field.type == "bool":
            given[field.name] = not default
            args.append(flag if not default else "--no-" + flag[2:])
            continue
        if field.metadata["choices"] is not None:
            value = next(c for c in field.metadata["choices"] if c != default)
        elif field.type.startswith("int"):
            value = (default or 0) + 7
        elif field.type.startswith("float"):
            value = (default or 0.0) + 0.25
        else:
            value = str(tmp_path / field.name)
        given[field.name] = value
        args += [flag, str(value)]

    def fake_train(config, **kwargs):
        raise Captured(config)
    monkeypatch.setattr("sharedgan.api.train", fake_train)
    # (--transport's other choice, distributed, goes through a torchrun rank's launch)
    monkeypatch.setattr("sharedgan.cluster.launch.launch_rank", lambda config, *args: fake_train(config))
    from sharedgan.cli import main
    with pytest.raises(Captured) as caught:
        main(["launch", *args])
    config = caught.value.args[0]
    assert {name: getattr(config, name) for name in given} == given


def test_lr_sets_the_three_learning_rates(monkeypatch, tmp_path):
    def fake_train(config, **kwargs):
        raise Captured(config)
    monkeypatch.setattr("sharedgan.api.train", fake_train)
    from sharedgan.cli import main
    with pytest.raises(Captured) as caught:
        main(["launch", "--out", str(tmp_path / "r"), "--lr", "0.01"])
    config = caught.value.args[0]
    assert (config.lr_generator, config.lr_discriminator, config.lr_classifier) == (0.01, 0.01, 0.01)


def test_a_role_s_own_learning_rate_wins_over_lr(monkeypatch, tmp_path):
    def fake_train(config, **kwargs):
        raise Captured(config)
    monkeypatch.setattr("sharedgan.api.train", fake_train)
    from sharedgan.cli import main
    with pytest.raises(Captured) as caught:
        main(["launch", "--out", str(tmp_path / "r"), "--lr", "0.01", "--lr-classifier", "0.03"])
    config = caught.value.args[0]
    assert (config.lr_generator, config.lr_discriminator, config.lr_classifier) == (0.01, 0.01, 0.03)


@pytest.mark.parametrize("generator", GENERATORS)
def test_every_built_in_generator_reads_back_without_consent(generator):
    """A run of any --generator names its factory in config.json; reading it back (eval, sample,
    --resume) needs no --trust-run, as it is sharedgan's own code."""
    config = TrainConfig(dataset="cifar10", generator=generator).validate(reading=True)
    require_consent(config, "RUN/config.json")  # raises UntrustedRun for a factory sharedgan does not ship


def test_images_default_to_r1_and_the_resize_generator_and_2d_data_to_neither():
    """The data-dependent defaults land in the config (so config.json records what ran)."""
    image, mixture = TrainConfig(dataset="cifar10").validate(reading=True), TrainConfig().validate()
    assert (image.r1, image.generator) == (1.0, "resize")
    assert image.generator_factory == "sharedgan.models.dcgan:resize_generator"
    assert (mixture.r1, mixture.generator) == (0.0, "standard")
    assert mixture.generator_factory == "sharedgan.models.mlp:mlp_generator"
    own = TrainConfig(dataset="cifar10", generator_factory="mypackage.models:g").validate(reading=True)
    assert (own.generator, own.generator_factory) == ("standard", "mypackage.models:g")  # theirs, not resize
    resized = TrainConfig(dataset="cifar10").validate(reading=True)  # a rerun of it with the standard generator
    rerun = dataclasses.replace(resized, generator="standard").validate(reading=True)
    assert rerun.generator_factory == "sharedgan.models.dcgan:generator"
    chosen = TrainConfig(dataset="cifar10", r1=0.0, generator="standard").validate(reading=True)
    assert (chosen.r1, chosen.generator_factory) == (0.0, "sharedgan.models.dcgan:generator")


def test_a_run_made_before_a_default_changed_keeps_the_default_it_trained_with():
    """A run's config.json records every setting of its day: a key it lacks is a later setting, and
    the run trained with that setting's default then, not today's."""
    written = dataclasses.asdict(TrainConfig(dataset="cifar10", r1=0.0, generator="standard").validate(reading=True))
    before = {key: value for key, value in written.items() if key not in ("r1", "generator")}
    assert TrainConfig.from_dict(before, run=True).validate(reading=True) == TrainConfig.from_dict(written)
    assert before["generator_factory"] == "sharedgan.models.dcgan:generator"
    partial = {key: value for key, value in before.items() if key != "generator_factory"}
    today = TrainConfig.from_dict(partial).validate(reading=True)  # not a run's: today's defaults
    assert (today.r1, today.generator) == (1.0, "resize")


def launched_with(monkeypatch, *args) -> TrainConfig:
    """The validated config ``sharedgan launch ARGS`` would train."""
    def fake_train(config, **kwargs):
        raise Captured(config)
    monkeypatch.setattr("sharedgan.api.train", fake_train)
    from sharedgan.cli import main
    with pytest.raises(Captured) as caught:
        main(["launch", *args])
    return caught.value.args[0].validate(reading=True)


def test_config_takes_former_defaults_only_from_a_run_directory(monkeypatch, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text('{"dataset": "cifar10", "k": 2}')  # written by hand
    assert launched_with(monkeypatch, "--config", str(tmp_path / "mine" / "config.json")).r1 == 1.0
    run = tmp_path / "run"
    run.mkdir()
    old = {k: v for k, v in dataclasses.asdict(TrainConfig(dataset="cifar10", k=2, r1=0.0).validate(reading=True))
           .items() if k != "r1"}  # a run from before R1 existed
    (run / "config.json").write_text(json.dumps(old))
    (run / "run.h5").write_bytes(b"")
    assert launched_with(monkeypatch, "--config", str(run / "config.json")).r1 == 0.0


def test_a_generator_given_beside_config_replaces_the_files_generator_and_its_factory(monkeypatch, tmp_path):
    """A rerun of an image run (resize by default) with the papers' generator, or with one's own."""
    (tmp_path / "config.json").write_text(TrainConfig(dataset="cifar10", k=2).validate(reading=True).to_json())
    papers = launched_with(monkeypatch, "--config", str(tmp_path / "config.json"), "--generator", "standard")
    assert (papers.generator, papers.generator_factory) == ("standard", "sharedgan.models.dcgan:generator")
    own = launched_with(monkeypatch, "--config", str(tmp_path / "config.json"), "--generator-factory",
                        "mypackage.models:g")
    assert (own.generator, own.generator_factory) == ("standard", "mypackage.models:g")
