"""The scorers' pure parts against oracles written here: delphi's prompt layout and answer parsing, balanced
accuracy by brute force, fuzzing's marks, OpenAI's expected values and correlation; then each scorer once against
the fake OpenAI server (truthful, garbage and log-probability-less answers)."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
from fakes.fake_openai import Answer, FakeOpenAI

from mistudio.autointerp.client import ChatClient, Endpoint, TokenLogprobs
from mistudio.autointerp.scorers import get_scorer
from mistudio.autointerp.scorers.classifier import Sample, balanced_accuracy, batch_samples, parse_predictions
from mistudio.autointerp.scorers.detection import FEW_SHOT as DETECTION_FEW_SHOT
from mistudio.autointerp.scorers.detection import SYSTEM_PROMPT as DETECTION_SYSTEM
from mistudio.autointerp.scorers.detection import DetectionScorer
from mistudio.autointerp.scorers.examples import ScoringExample, centred_span
from mistudio.autointerp.scorers.fuzzing import (
    FuzzingScorer,
    activating_text,
    false_positive_positions,
    highlight,
    mean_active_tokens,
)
from mistudio.autointerp.scorers.simulation import (
    correlation,
    expected_value,
    parse_simulation,
    simulation_messages,
)
from mistudio.errors import EndpointResponseError, InvalidInputError

# ----- delphi's answer format ---------------------------------------------------------------------------------


def test_predictions_are_read_as_delphi_reads_them():
    assert parse_predictions("[1,0,0,1,0]", 5) == [1, 0, 0, 1, 0]
    assert parse_predictions("Sure! Here it is: [1, 0, 0, 1, 0]\nand [0,0] later", 5) == [1, 0, 0, 1, 0]
    assert parse_predictions("[true, false, true]", 3) == [1, 0, 1]
    for bad in ("no list at all", "[1, 0, x]", "[1, 0]", "[1, 0, 2]", "[[1], 0, 0]"):
        with pytest.raises(ValueError):
            parse_predictions(bad, 3)


def test_balanced_accuracy_equals_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        labels = [bool(x) for x in rng.integers(0, 2, n)]
        preds = [int(x) for x in rng.integers(0, 2, n)]
        got = balanced_accuracy(preds, labels)
        pos = [p for p, a in zip(preds, labels, strict=True) if a]
        neg = [p for p, a in zip(preds, labels, strict=True) if not a]
        tpr = np.mean(pos) if pos else 0.0
        tnr = np.mean([1 - p for p in neg]) if neg else 0.0
        assert got["balanced_accuracy"] == pytest.approx((tpr + tnr) / 2)
        assert got["tpr"] == pytest.approx(tpr) and got["tnr"] == pytest.approx(tnr)
        assert got["tp"] + got["fn"] == len(pos) and got["tn"] + got["fp"] == len(neg)
        assert 0.0 <= got["balanced_accuracy"] <= 1.0


def test_prompts_hold_five_examples_and_follow_delphis_layout():
    samples = [Sample(text=f"text {i}", activating=i % 2 == 0, quantile=0) for i in range(12)]
    assert [len(b) for b in batch_samples(samples, 5)] == [5, 5, 2]
    scorer = DetectionScorer()
    messages = scorer.messages("the word dog", samples[:5])
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert messages[0]["content"] == DETECTION_SYSTEM
    assert [m["content"] for m in messages[2:7:2]] == ["[1,0,0,0,1]", "[0,0,0,0,0]", "[1,1,1,1,1]"]
    assert messages[1]["content"] == DETECTION_FEW_SHOT[0][0]
    assert messages[-1]["content"] == ("Latent explanation: the word dog\n\nText examples:\n\n"
                                       "Example 0: text 0\nExample 1: text 1\nExample 2: text 2\n"
                                       "Example 3: text 3\nExample 4: text 4\n")
    # the system prompt asks for a Python list, as delphi's does
    assert "valid Python list" in messages[0]["content"]


# ----- fuzzing's marks ----------------------------------------------------------------------------------------


def _groupby_highlight(tokens, marked):  # delphi's itertools.groupby formulation, independently
    from itertools import groupby
    out = []
    for flag, group in groupby(range(len(tokens)), key=marked):
        text = "".join(tokens[i] for i in group)
        out.append(f"<<{text}>>" if flag else text)
    return "".join(out)


def test_highlight_wraps_runs_of_marked_tokens():
    tokens = ["The", " tight", " end", " ran", " to", " the", " end", "\n"]
    rng = random.Random(0)
    for _ in range(40):
        marks = {i for i in range(len(tokens)) if rng.random() < 0.4}
        assert highlight(tokens, marks.__contains__) == _groupby_highlight(
            [t.replace("\n", "\\n") for t in tokens], marks.__contains__)
    assert highlight(tokens, {1, 2}.__contains__) == "The<< tight end>> ran to the end\\n"


def test_activating_marks_follow_the_threshold_and_negatives_get_random_marks():
    ex = ScoringExample(tokens=list("abcdefgh"), values=[0, 1.0, 0.2, 0.35, 0, 0, 0, 0.0], activating=True)
    assert activating_text(ex) == "a<<b>>c<<d>>efgh"  # 0.3 × max = 0.3: 1.0 and 0.35 marked, 0.2 not
    assert mean_active_tokens([ex, ScoringExample(list("ab"), [1.0, 0], True)]) == math.ceil((3 + 1) / 2)
    zero = ScoringExample(tokens=[f"t{i}" for i in range(32)], values=[0.0] * 32, activating=False)
    for seed in range(10):
        marks = false_positive_positions(zero, 3, random.Random(seed))
        assert len(marks) == 3 and 32 - 32 // 4 in marks  # delphi always marks where the maximum sits
        assert marks == false_positive_positions(zero, 3, random.Random(seed))  # seeded
    short = ScoringExample(tokens=["a", "b"], values=[0.0, 0.0], activating=False)
    assert len(false_positive_positions(short, 5, random.Random(0))) == 2


def test_fuzzing_samples_mark_activations_and_random_tokens():
    act = ScoringExample(tokens=[" x", " cat", " y", " z"], values=[0, 2.0, 0, 0], activating=True, quantile=1)
    non = ScoringExample(tokens=[" a", " b", " c", " d"], values=[0.0] * 4, activating=False)
    samples = FuzzingScorer().samples([act, non], random.Random(0))
    assert [s.activating for s in samples] == [False, True]
    assert samples[1].text == " x<< cat>> y z"
    assert samples[0].text.count("<<") == 1  # one token marked: the mean number of active tokens


def test_examples_are_centred_as_delphi_centres_them():
    assert centred_span(128, 60, 32) == (60 - 24, 60 + 8)
    assert centred_span(128, 3, 32) == (0, 32)
    assert centred_span(128, 127, 32) == (96, 128)
    assert centred_span(16, 5, 32) == (0, 16)


# ----- OpenAI's simulation -----------------------------------------------------------------------------------


def test_expected_value_over_the_numbers_among_the_top_logprobs():
    top = [("0", math.log(0.5)), ("10", math.log(0.2)), ("cat", math.log(0.1)), (" 5", math.log(0.2))]
    assert expected_value(top) == pytest.approx((0 * 0.5 + 10 * 0.2 + 5 * 0.2) / 0.9)
    assert expected_value([("x", -0.1), ("11", -1.0), ("05", -1.0)]) is None


def _entries(pieces):
    """Answer tokens, each with itself as the sure choice, or a chosen top list."""
    out = []
    for piece in pieces:
        token, top = piece if isinstance(piece, tuple) else (piece, [(piece, 0.0)])
        out.append(TokenLogprobs(token=token, logprob=top[0][1], top=top))
    return out


def test_simulation_answer_read_from_its_tokens():
    half = [("0", math.log(0.5)), ("8", math.log(0.5))]
    answer = _entries(["<", "start", ">\n", "The", "\t", "0", "\n", " cat", "\t", ("10", [("10", -0.1), ("9", -2.4)]),
                       "\n", " sat", "\t", ("0", half), "\n", "<", "end", ">"])
    values, fallbacks = parse_simulation(answer, 3)
    w10, w9 = math.exp(-0.1), math.exp(-2.4)
    assert values == pytest.approx([0.0, (10 * w10 + 9 * w9) / (w10 + w9), 4.0]) and fallbacks == 0
    # a tab merged into the value token, and a value token whose alternatives are no numbers (the sampled value)
    merged = _entries(["a", "\t3", "\n", "b", ("\t", [("\t", 0.0)]), ("7", [("seven", 0.0)])])
    assert parse_simulation(merged, 2) == ([3.0, 7.0], 1)
    with pytest.raises(ValueError, match="2 activation lines for 3"):
        parse_simulation(merged, 3)
    with pytest.raises(ValueError):
        parse_simulation(_entries(["a", "\t", "12"]), 1)


def test_correlation_is_pearsons():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    manual = ((a - a.mean()) * (b - b.mean())).sum() / math.sqrt(((a - a.mean()) ** 2).sum() * ((b - b.mean()) ** 2).sum())
    assert correlation(a.tolist(), b.tolist()) == pytest.approx(manual)
    assert correlation([1.0, 2.0], [3.0, 3.0]) is None


def test_simulation_prompt_is_openais_all_at_once_layout():
    messages = simulation_messages("cats", ["The", " cat", "\n"])
    assert messages[0]["role"] == "system" and "token<tab>activation" in messages[0]["content"]
    last = messages[-1]["content"]
    assert "Neuron 2\nExplanation of neuron 2 behavior: the main thing this neuron does is find cats" in last
    assert "\n<start>\nThe\tunknown\n cat\tunknown\n\\n\tunknown\n<end>\n" in last
    assert messages[2]["role"] == "assistant" and " cat\t10" in messages[2]["content"]


# ----- scorers against the fake endpoint ----------------------------------------------------------------------

_EXAMPLE_LINE = re.compile(r"^Example (\d+): (.*)$", re.M)


def _word_judge(body):
    """Answers truthfully: an example fits when it contains the explanation's quoted word."""
    last = body["messages"][-1]["content"]
    word = re.search(r'Latent explanation: .*"(.+?)"', last).group(1)
    return "[" + ",".join("1" if word in text else "0" for _, text in _EXAMPLE_LINE.findall(last)) + "]"


def _examples():
    act = [ScoringExample(tokens=[" the", " dog", f" {i}"], values=[0, 3.0, 0], activating=True, quantile=i % 3)
           for i in range(7)]
    non = [ScoringExample(tokens=[" the", " cat", f" {i}"], values=[0.0] * 3, activating=False) for i in range(6)]
    return act + non


def test_detection_scores_a_truthful_judge_and_reports_garbage():
    with FakeOpenAI(_word_judge) as fake:
        client = ChatClient(Endpoint(fake.url, "judge"))
        good = DetectionScorer().score(client, 'the word "dog"', _examples(), random.Random(0))
        wrong = DetectionScorer().score(client, 'the word "the"', _examples(), random.Random(0))
        assert len(fake.requests) == 2 * math.ceil(13 / 5)
    assert good.score == 1.0 and good.n_examples == 13
    assert good.details["tpr"] == 1.0 and good.details["tnr"] == 1.0 and good.details["n_prompts"] == 3
    assert wrong.score == 0.5 and wrong.details["tpr"] == 1.0 and wrong.details["tnr"] == 0.0
    calls = iter(range(100))

    def half_garbage(body):
        return "I cannot tell." if next(calls) % 2 == 0 else _word_judge(body)

    with FakeOpenAI(half_garbage) as fake:
        client = ChatClient(Endpoint(fake.url, "judge"))
        partial = DetectionScorer().score(client, 'the word "dog"', _examples(), random.Random(0))
    assert partial.details["unparsed_prompts"] == 2 and partial.n_examples < 13
    with FakeOpenAI(lambda body: "no idea") as fake, pytest.raises(EndpointResponseError, match=r"\[1,0,0,1,0\]"):
        DetectionScorer().score(ChatClient(Endpoint(fake.url, "judge")), "x", _examples(), random.Random(0))


def test_simulation_needs_logprobs():
    examples = _examples()[:2]
    no_logprobs = {"choices": [{"index": 0, "message": {"role": "assistant", "content": " the\t0"},
                                "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    with FakeOpenAI(lambda body: no_logprobs) as fake, pytest.raises(EndpointResponseError,
                                                                     match="no log-probabilities"):
        get_scorer("simulation").score(ChatClient(Endpoint(fake.url, "judge")), "dogs", examples, random.Random(0))

    def simulator(body):
        lines = re.findall(r"^(.*)\tunknown$", body["messages"][-1]["content"], re.M)
        entries = []
        for token in lines:
            value = "10" if token == " dog" else "0"
            entries += [{"token": token, "logprob": 0.0, "top_logprobs": [{"token": token, "logprob": 0.0}]},
                        {"token": "\t", "logprob": 0.0, "top_logprobs": [{"token": "\t", "logprob": 0.0}]},
                        {"token": value, "logprob": math.log(0.9),
                         "top_logprobs": [{"token": value, "logprob": math.log(0.9)},
                                          {"token": "5", "logprob": math.log(0.1)}]},
                        {"token": "\n", "logprob": 0.0, "top_logprobs": [{"token": "\n", "logprob": 0.0}]}]
        return Answer("".join(e["token"] for e in entries), logprobs=entries)

    with FakeOpenAI(simulator) as fake:
        outcome = get_scorer("simulation").score(ChatClient(Endpoint(fake.url, "judge")), "dogs", _examples(),
                                                 random.Random(0))
        assert all(r.get("logprobs") is True and r.get("top_logprobs") == 15 for r in fake.requests)
    assert outcome.n_examples == 13 and outcome.details["n_tokens"] == 39
    assert outcome.score == pytest.approx(1.0)  # EV 9.5 on every dog, 0.5 elsewhere: a perfect correlation
    assert outcome.details["mean_expected_active"] == pytest.approx(9.5)


def test_unknown_scorer_is_refused():
    with pytest.raises(InvalidInputError, match="detection, fuzzing, simulation"):
        get_scorer("intruder")
