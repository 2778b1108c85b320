"""Normalizers of multiple-choice datasets (scored by the one shared ranking head)."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np

from muppet_core.families.multiple_choice import MultipleChoiceRecord
from muppet_core.tasks.catalog import TaskSpec


def question_choices(row: dict, spec: TaskSpec) -> MultipleChoiceRecord | None:
    """CommonsenseQA / ARC / OpenBookQA jsonl: question{stem, choices[{label, text}]}, answerKey.

    ARC sometimes labels choices '1'-'4' instead of 'A'-'D'; the key is matched against the
    choices' own labels, so both forms work. Rows whose key matches no choice are dropped.
    """
    choices = row["question"]["choices"]
    keys = [c["label"] for c in choices]
    if row["answerKey"] not in keys:
        return None
    return MultipleChoiceRecord(
        context=row["question"]["stem"],
        choices=[c["text"] for c in choices],
        label=keys.index(row["answerKey"]),
        id=str(row.get("id", "")),
    )


COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What happened as a result?"}
LETTERS = ["A", "B", "C", "D", "E"]


def _shuffled(key: str, gold: str, others: list[str]) -> tuple[list[str], int]:
    """``gold`` and ``others`` in an order fixed by sha256(key), and the gold's index."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))
    order = rng.permutation(1 + len(others))
    return [([gold, *others])[i] for i in order], int(np.flatnonzero(order == 0)[0])


def openbookqa(row: dict, spec: TaskSpec) -> MultipleChoiceRecord | None:
    """OpenBookQA jsonl (as ``question_choices``) or tsv: ID, Question Stem, Choices
    ``'(A) .. (B) ..'``, Answer Key. A tsv row whose choices repeat a letter is ambiguous: ValueError."""
    if "Choices" not in row:
        return question_choices(row, spec)
    keys, texts = zip(*re.findall(r"\(([A-E])\) (.*?)(?= \([A-E]\) |$)", row["Choices"]))
    if len(set(keys)) != len(keys):
        raise ValueError(f"choice letters repeat: {keys}")
    return MultipleChoiceRecord(context=row["Question Stem"], choices=list(texts), label=keys.index(row["Answer Key"]), id=row["ID"])


def copa(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """SuperGLUE COPA (jsonl or hub): premise, question (cause|effect), choice1, choice2, label.
    No id: ``idx`` restarts at 0 in every split."""
    context = f"{row['premise']} {COPA_QUESTIONS[row['question']]}"
    return MultipleChoiceRecord(context=context, choices=[row["choice1"], row["choice2"]], label=int(row["label"]))


def winogrande(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """Winogrande-format rows (WSC273): sentence with '_', option1/2, answer '1'|'2'. Options are
    shuffled per qID, since this copy always has the gold answer first."""
    options = [row["option1"], row["option2"]]
    gold = int(row["answer"]) - 1
    choices, label = _shuffled(row["qID"], options[gold], [options[1 - gold]])
    return MultipleChoiceRecord(context=row["sentence"], choices=choices, label=label, id=row["qID"])


def hellaswag_lines(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """HellaSwag as llama.cpp text, 6-line blocks: ctx, gold index, ending0-3."""
    context, gold, *endings = row["lines"]
    return MultipleChoiceRecord(context=context, choices=endings, label=int(gold))


def piqa(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """PIQA: a JSON line (goal, sol1, sol2) beside its label line (parallel reader), or a hub row."""
    example = json.loads(row["example"]) if "example" in row else row
    return MultipleChoiceRecord(context=example["goal"], choices=[example["sol1"], example["sol2"]], label=int(row["label"]))


def _fill_blanks(text: str, option: str) -> str:
    """``text`` with its blanks ('_') filled by ``option``, whitespace runs made one space: one ';'-separated
    part of the option per blank where the parts and blanks are as many, otherwise the whole option in each."""
    blanks = text.count("_")
    parts = [p.strip() for p in option.split(";")] if blanks > 1 and option.count(";") == blanks - 1 else [option] * blanks
    pieces = text.split("_")
    filled = pieces[0] + "".join(part + piece for part, piece in zip(parts, pieces[1:]))
    return re.sub(r"\s+", " ", filled).strip()


def _race_question(article: str, question: str, options: list[str], answer: str, id: str = "") -> MultipleChoiceRecord:
    """A fill-in-the-blank question ('_') is read as fairseq's RACE preprocessing writes it, each option in
    the blank: the context is the question up to its first blank (empty where the blank opens it), each
    choice the option with the rest of the question. Other questions keep the question and the options."""
    if "_" not in question:
        return MultipleChoiceRecord(context=question, choices=list(options), label=LETTERS.index(answer), id=id, passage=article)
    stem, rest = question.split("_", 1)
    context, choices = re.sub(r"\s+", " ", stem).strip(), [_fill_blanks("_" + rest, option) for option in options]
    return MultipleChoiceRecord(context=context, choices=choices, label=LETTERS.index(answer), id=id, passage=article)


def race(row: dict, spec: TaskSpec) -> MultipleChoiceRecord | list[MultipleChoiceRecord]:
    """RACE passage file (id, article, questions[], options[][], answers[]): one record per
    question, id '<file id>-<index>'. Rows without ``questions`` go to ``race_question``."""
    if "questions" not in row:
        return race_question(row, spec)
    questions = zip(row["questions"], row["options"], row["answers"], strict=True)
    return [_race_question(row["article"], q, opts, ans, f"{row['id']}-{k}") for k, (q, opts, ans) in enumerate(questions)]


def race_question(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """RACE in the HF layout (test jsonl, hub): example_id, article, question, options, answer.
    No id: a passage's questions share its example_id."""
    return _race_question(row["article"], row["question"], row["options"], row["answer"])


def sciq(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """SciQ: support (may be ''), question, correct_answer and 3 distractors, shuffled per question."""
    distractors = [row["distractor1"], row["distractor2"], row["distractor3"]]
    choices, label = _shuffled(row["question"], row["correct_answer"], distractors)
    return MultipleChoiceRecord(context=row["question"], choices=choices, label=label, passage=row["support"].strip())


def cosmosqa(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """Cosmos QA csv (or hub): id, context, question, answer0-3, label."""
    choices = [row[f"answer{i}"] for i in range(4)]
    return MultipleChoiceRecord(context=row["question"], choices=choices, label=int(row["label"]), id=row["id"], passage=row["context"])


def swag(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """SWAG hub rows (regular): startphrase, ending0-3, label."""
    return MultipleChoiceRecord(context=row["startphrase"], choices=[row[f"ending{i}"] for i in range(4)], label=int(row["label"]))


def mathqa(row: dict, spec: TaskSpec) -> MultipleChoiceRecord:
    """MathQA hub rows: Problem, options 'a ) 38 , b ) 27.675 , ... e ) none', correct letter."""
    choices = [c[4:].rstrip(" ,") for c in re.findall(r"[a-d] \) .*?, |e \) .*?$", row["options"])]
    if len(choices) != 5:
        raise ValueError(f"{len(choices)} options parsed, 5 expected")
    return MultipleChoiceRecord(context=row["Problem"], choices=choices, label=[k.lower() for k in LETTERS].index(row["correct"]))


def from_hub_fields(row: dict, spec: TaskSpec) -> MultipleChoiceRecord | None:
    """Hub rows mapped through ``hub.fields``: context, choices and label.

    ``choices`` may be a list of strings or the hub's ``{label: [...], text: [...]}`` mapping; a
    letter label is looked up among the choice labels.
    """
    fields = spec.hub.fields
    choices, label = row[fields.get("choices", "choices")], row[fields.get("label", "label")]
    keys = None
    if isinstance(choices, dict):
        keys, choices = list(choices["label"]), list(choices["text"])
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if not keys or label not in keys:
            return None
        label = keys.index(label)
    if label is None or label == "" or int(label) < 0:
        return None
    return MultipleChoiceRecord(context=row[fields.get("context", "question")], choices=list(choices), label=int(label))
