"""Integer flags of the CLI are counts, refused below their least value at parse time, naming the flag.

A negative integer would be sliced off the end of a list (``list[:-1]`` drops the last video) or turn
a rule off, so every integer flag goes through :func:`benchmarks.config_flags.count`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from benchmarks.cli import build_parser, main
from benchmarks.config_flags import (
    AddItems,
    add_config_flags,
    comma_items,
    config_from_args,
    count,
    refuse_repeats,
)
from physics.errors import ConfigError


def _flags(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, action) of every flag of every command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _flags(sub, (*path, name))
        elif action.option_strings:
            yield path, action


def test_count_takes_integers_at_or_above_its_least_value():
    assert count(min=1)("3") == 3 and count()("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be an integer >= 1, got '0'"):
        count(min=1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be an integer >= 0 \(0: all\), got '-1'"):
        count(min=0, zero="all")("-1")
    with pytest.raises(ValueError):  # argparse turns it into "invalid int value: '2.5'"
        count()("2.5")
    with pytest.raises(ValueError, match="count"):
        count(min=-1)


def test_an_int_field_of_a_typed_config_is_a_count_with_its_metadata_minimum(capsys):
    @dataclass(frozen=True)
    class Toy:
        steps: int = field(default=3, metadata={"min": 1, "help": "steps"})
        skip: int | None = field(default=None, metadata={"help": "skip"})
        sizes: tuple[int, ...] = field(default=(1, 2), metadata={"min": 1})

    parser = argparse.ArgumentParser(prog="toy")
    add_config_flags(parser, Toy)
    assert config_from_args(Toy, parser.parse_args(["--steps", "2", "--skip", "0", "--sizes", "4", "5"])) == Toy(2, 0, (4, 5))
    for argv, message in ((["--steps", "0"], "argument --steps: must be an integer >= 1, got '0'"),
                          (["--skip=-1"], "argument --skip: must be an integer >= 0, got '-1'"),
                          (["--sizes", "3", "0"], "argument --sizes: must be an integer >= 1, got '0'"),
                          (["--steps", "x"], "argument --steps: invalid int value: 'x'")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert message in capsys.readouterr().err


def test_every_integer_flag_of_the_cli_is_a_count():
    # a plain type=int flag would take -1 without a word; a new one must say its least value
    plain = [(" ".join(path), a.option_strings[0]) for path, a in _flags(build_parser()) if a.type is int]
    assert plain == []


def test_every_count_flag_of_the_cli_refuses_a_value_below_its_least_by_name(capsys):
    parser = build_parser()
    checked = 0
    for path, action in _flags(parser):
        least = getattr(action.type, "minimum", None)
        if least is None:
            continue
        flag = action.option_strings[-1]
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([*path, f"{flag}={least - 1}"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, (path, flag)
        assert f"argument {'/'.join(action.option_strings)}: must be an integer >= {least}" in err, (path, flag, err)
        checked += 1
    assert checked > 150  # every command's counts, seeds and indices (about 220 in all)


@pytest.mark.parametrize(("argv", "message"), [
    # four flags whose commands read their data before they could find a negative count themselves
    (["data", "video-trajectories", "--n", "-1"], "argument --n: must be an integer >= 1, got '-1'"),
    (["bench", "video-dynamics", "--window", "-3"], "argument --window: must be an integer >= 0, got '-3'"),
    (["bench", "dynamics", "--max-trajectories", "-1"], "argument --max-trajectories: must be an integer >= 0 (0: all)"),
    (["eval", "clevr", "--limit", "0"], "argument --limit: must be an integer >= 1, got '0'"),
    # ones no check reached: a negative seed was a numpy traceback, -1 samples an empty validation set
    (["train", "dynamics", "--seed", "-1"], "argument --seed: must be an integer >= 0, got '-1'"),
    (["train", "dynamics", "--valid-samples", "-1"], "argument --valid-samples: must be an integer >= 0"),
    (["bench", "speed", "--repeats", "0"], "argument --repeats: must be an integer >= 1, got '0'"),
    (["data", "clevr", "--samples", "0"], "argument --samples: must be an integer >= 1, got '0'"),
    (["train", "derender", "--crop-size", "0"], "argument --crop-size: must be an integer >= 1, got '0'"),
    (["train", "parser-curve", "--programs-list", "90", "-5"], "argument --programs-list: must be an integer >= 1"),
])
def test_a_bad_count_is_refused_before_any_data_is_read(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser(argv).parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err


def test_a_config_flag_shows_its_default_once_as_a_user_would_type_it():
    @dataclass(frozen=True)
    class Toy:
        types: tuple[str, ...] = field(default=("a", "b"), metadata={"help": "types"})
        sets: tuple[str, ...] = field(default=(), metadata={"help": "settings"})
        init: str = field(default="", metadata={"help": "weights to start from"})
        scales: str = field(default="", metadata={"help": "crop scales (default: the plain crop only)"})
        rate: float = field(default=0.5, metadata={"help": "rate"})

    parser = argparse.ArgumentParser(prog="toy")
    add_config_flags(parser, Toy)
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["types"] == "types (default: a b)"  # not "('a', 'b')": what --types takes
    assert helps["sets"] == "settings (default: none)" and helps["init"] == "weights to start from (default: none)"
    assert helps["scales"] == "crop scales (default: the plain crop only)"  # its own words, not "(default: )" after them
    assert helps["rate"] == "rate (default: 0.5)"


def test_every_float_flag_of_the_cli_refuses_nan_at_parse_time(capsys):
    # seven hand-written float flags were plain type=float: `nesy control --explore nan` took it
    parser = build_parser()
    plain = [(" ".join(path), a.option_strings[0]) for path, a in _flags(parser) if a.type is float]
    assert plain == []
    for argv, flag in ((["control", "--task", "boxpush", "--model", "gt", "--out", "x.json", "--explore", "nan"], "--explore"),
                       (["bench", "compare", "--a", "r.json:in", "--b", "r.json:propnet", "--level", "nan"], "--level"),
                       (["train", "video-dynamics", "--data", "d", "--out", "o", "--valid-fraction", "nan"], "--valid-fraction")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert f"argument {flag}: must be a number, got 'nan'" in capsys.readouterr().err


def test_every_list_flag_of_the_cli_adds_up_when_given_twice():
    # argparse's store kept only the last occurrence: --types descriptive --types predictive ran predictive alone
    plain = [(" ".join(path), a.option_strings[0]) for path, a in _flags(build_parser())
             if a.nargs in ("+", "*") and not isinstance(a, AddItems)]
    assert plain == []
    parser = build_parser()
    args = parser.parse_args(["eval", "clevrer", "--data", "d", "--types", "descriptive", "--types", "predictive"])
    assert tuple(args.types) == ("descriptive", "predictive")
    args = parser.parse_args(["bench", "compare", "--a", "r1:m", "--a", "r2:m", "--b", "r3:m"])
    assert args.a == ["r1:m", "r2:m"] and args.b == ["r3:m"]
    args = parser.parse_args(["train", "parser-curve", "--programs-list", "90", "--programs-list", "180"])
    assert args.programs_list == [90, 180]
    default = parser.parse_args(["train", "parser-curve"]).programs_list
    assert default == [90, 180, 270, 540, 1000]  # once: replaces the default, not added to it


def test_a_tuple_config_field_given_twice_adds_its_items_to_the_first_not_to_the_default():
    @dataclass(frozen=True)
    class Toy:
        sizes: tuple[int, ...] = field(default=(1, 2))

    parser = argparse.ArgumentParser(prog="toy")
    add_config_flags(parser, Toy)
    assert config_from_args(Toy, parser.parse_args(["--sizes", "4", "--sizes", "5", "6"])) == Toy((4, 5, 6))
    assert config_from_args(Toy, parser.parse_args(["--sizes", "4"])) == Toy((4,))
    assert config_from_args(Toy, parser.parse_args([])) == Toy((1, 2))
    with pytest.raises(ValueError, match="AddItems is for list flags"):
        parser.add_argument("--one", action=AddItems)


def test_comma_items_strips_drops_empty_items_and_refuses_a_repeated_one():
    assert comma_items(" in, propnet,", "--models") == ["in", "propnet"]
    with pytest.raises(ConfigError, match=r"^--models 'in,propnet,in': in given twice; name each once$"):
        comma_items("in,propnet,in", "--models")


def test_refuse_repeats_names_the_option_and_shows_a_list_flag_as_typed():
    refuse_repeats(("descriptive", "predictive"), "--types")  # each once: nothing to say
    with pytest.raises(ConfigError, match=r"^--types 'predictive predictive': predictive given twice; name each once$"):
        refuse_repeats(("predictive", "predictive"), "--types")
    from benchmarks.eval_clevrer import ClevrerEvalConfig

    with pytest.raises(ConfigError, match="descriptive given twice"):  # the Python side too
        ClevrerEvalConfig(data="d", types=("descriptive", "descriptive"))


@pytest.mark.parametrize("argv, message", [
    # each ran the repeated name twice and kept its last copy's figures (or ran it once) without a word
    (["bench", "dynamics", "--world", "cradle", "--models", "in,propnet,in"], "--models 'in,propnet,in': in given twice"),
    (["bench", "dynamics", "--world", "cradle", "--models", "in", "--horizons", "1,5,05"],
     "--horizons '1,5,05': 5 given twice"),
    (["bench", "video-dynamics", "--dynamics", "gt,propnet,gt"], "--dynamics 'gt,propnet,gt': gt given twice"),
    (["bench", "all", "--suites", "clevr-nsvqa,clevr-nsvqa"],
     "--suites 'clevr-nsvqa,clevr-nsvqa': clevr-nsvqa given twice"),
])
def test_a_name_given_twice_in_a_comma_list_is_refused_in_one_line_before_any_data_is_read(argv, message, tmp_path,
                                                                                            capsys):
    out = tmp_path / "r.json" if argv[1] != "all" else tmp_path / "all"
    data = ["--data", str(tmp_path / "missing")] if argv[1] != "all" else []  # bench all makes its own data
    assert main([*argv, *data, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    # comma lists of names and numbers: a repeat is refused in one line, never taken without a word
    (["train", "video-dynamics", "--data", "{missing}", "--train-only", "edge_encoder,edge_encoder", "--out", "{out}"],
     "--train-only 'edge_encoder,edge_encoder': edge_encoder given twice; name each once"),
    (["train", "derender", "--data", "{missing}", "--test-scales", "1.1,1.10", "--out", "{out}"],  # the crop weighed twice
     "--test-scales '1.1,1.10': 1.10 given twice; name each once"),
    (["train", "nscl", "--data", "{missing}", "--group-weights", "shape:2,shape:3", "--out", "{out}"],  # kept shape:3
     "(each once) and W > 0, got 'shape:3'"),
    (["demo", "--skip", "nsvqa,nsvqa", "--out", "{out}"], "--skip 'nsvqa,nsvqa': nsvqa given twice; name each once"),
    # a list flag of names, in one flag and in two: a repeated type is refused, not counted once without a word
    (["eval", "clevrer", "--data", "{missing}", "--types", "descriptive", "predictive", "descriptive", "--out", "{out}"],
     "--types 'descriptive predictive descriptive': descriptive given twice; name each once"),
    (["eval", "clevrer", "--data", "{missing}", "--types", "predictive", "--types", "predictive", "--out", "{out}"],
     "--types 'predictive predictive': predictive given twice; name each once"),
    # a size given twice trained twice into one file; a REINFORCE size not among --programs-list was never trained
    (["train", "parser-curve", "--programs-list", "90", "180", "90", "--out-dir", "{out}"],
     "--programs-list '90 180 90': 90 given twice; name each once"),
    (["train", "parser-curve", "--programs-list", "90", "180", "--reinforce-programs", "180", "540", "--out-dir", "{out}"],
     "--reinforce-programs 180 540: 540 not among --programs-list (90 180); each REINFORCE size is one of those"),
])
def test_the_other_comma_lists_refuse_a_name_given_twice_in_one_line_before_anything_is_read(argv, message, tmp_path,
                                                                                              capsys):
    out = tmp_path / "out"
    argv = [a.format(missing=tmp_path / "missing", out=out) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_the_python_side_of_those_lists_refuses_a_repeat_too_and_a_derender_folder_may_be_named_twice(monkeypatch):
    from perception.derender.attributes import AttributeConfig
    from physics.models.training import TrainConfig

    with pytest.raises(ConfigError, match="edge_encoder given twice") as caught:
        TrainConfig(train_only="edge_encoder, convs.0.rel,edge_encoder")
    assert caught.value.settings == ("train_only",)
    TrainConfig(train_only="convs,convs.0.rel")  # nested prefixes name different things: kept
    with pytest.raises(ConfigError, match="each scale once"):
        AttributeConfig(test_scales=(0.92, 1.08, 0.92))
    assert AttributeConfig(test_scales=(0.92, 1.08)).test_scales == (0.92, 1.08)
    import perception.derender.data as derender_data

    monkeypatch.setattr(derender_data, "load_derender_folder", lambda root, limit=None: [root])
    # read twice, by design (its samples weigh twice: derender.md's round 2, --data $B,$B,data/pb_train)
    assert derender_data.load_derender_folders("b, b,pb") == ["b", "b", "pb"]
