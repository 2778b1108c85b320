"""Normalizers of extractive reading-comprehension datasets (one shared span head)."""

from __future__ import annotations

import re

from muppet_core.families.span import SpanRecord
from muppet_core.tasks.catalog import TaskSpec


def squad(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """SQuAD v1.1 question rows; the first gold answer is the training target, and every gold
    answer is kept in ``answers`` for scoring (the best match counts, as in the official script).

    Rows without an answer are dropped; an answer that is not at its stated offset is caught by
    the record check.
    """
    answers = row["answers"]
    if not answers:
        return None
    text, start = answers[0]["text"], int(answers[0]["answer_start"])
    golds = [a["text"] for a in answers]
    return SpanRecord(question=row["question"], context=row["context"], answer_text=text, answer_start=start, id=row["id"], answers=golds)


def from_hub_fields(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """Hub rows in the SQuAD layout: question, context, answers{text[], answer_start[]}."""
    answers = row["answers"]
    if not answers["text"]:
        return None
    golds = [{"text": t, "answer_start": a} for t, a in zip(answers["text"], answers["answer_start"])]
    return squad({**row, "answers": golds}, spec)


def _word_at(context: str, text: str) -> int | None:
    """The first offset of ``text`` (non-empty) in ``context`` as whole words (not inside a longer word:
    a short alias such as "Io" is not found in "Ionian"), or None."""
    found = re.search(rf"(?<!\w){re.escape(text)}(?!\w)", context) if text else None
    return found.start() if found else None


def _first_found(context: str, texts: list[str]) -> tuple[str, int] | None:
    """The first of ``texts`` that occurs in ``context`` as whole words (``_word_at``), with that offset, or None."""
    for text in texts:
        if (start := _word_at(context, text)) is not None:
            return text, start
    return None


def record(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """ReCoRD hub rows (SuperGLUE): passage, query (a cloze with '@placeholder'), entities[],
    entity_spans{text[], start[], end[]} (character offsets, end exclusive), answers[] (entity texts),
    idx{passage, query}.

    The question is the query, its placeholder kept. The target is the first answer at the first entity
    span holding it (at its first occurrence in the passage where no span does); every answer is a gold.
    Rows without answers (the test split) are rejected.
    """
    answers, spans, idx = row["answers"], row["entity_spans"], row["idx"]
    if not answers:
        return None
    text = answers[0]
    starts = [int(s) for t, s in zip(spans["text"], spans["start"], strict=True) if t == text]
    start = starts[0] if starts else row["passage"].find(text)
    example_id = f"{idx['passage']}-{idx['query']}"
    return SpanRecord(question=row["query"], context=row["passage"], answer_text=text, answer_start=start, id=example_id, answers=list(answers))


def drop(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """DROP hub rows: section_id, query_id, passage, question, answers_spans{spans[], types[]} (each
    answer's text and its type: 'span', 'number' or 'date'; no offsets).

    Only span answers are extractive: a row whose answers hold none (a number or a date, most of DROP)
    is rejected. The target is the first span answer found in the passage, at its first occurrence;
    every distinct span answer is a gold. The train split lists one answer per question (several spans
    are the parts of one multi-span answer, so such a question trains on its first part found);
    validation lists every annotator's answer.
    """
    answers = row["answers_spans"]
    spans = [s for s, kind in zip(answers["spans"], answers["types"], strict=True) if kind == "span"]
    found = _first_found(row["passage"], spans)
    if found is None:
        return None
    text, start = found
    golds = list(dict.fromkeys(spans))
    return SpanRecord(question=row["question"], context=row["passage"], answer_text=text, answer_start=start, id=row["query_id"], answers=golds)


def hotpotqa(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """HotpotQA hub rows (distractor): id, question, answer (text, no offset), type, level,
    supporting_facts{title[], sent_id[]}, context{title[], sentences[][]}.

    The context is every paragraph in the row's order, each its title on a line and then its sentences
    joined as they stand (a sentence after the first carries its own leading space), paragraphs apart by a
    blank line. The answer is placed at its first occurrence as whole words (``_word_at``) in a
    supporting-fact sentence (in the order the facts are listed), else at its first such occurrence in
    the context. 'yes'/'no' answers (comparison questions) and answers not in the context are rejected.
    """
    answer, paragraphs, facts = row["answer"], row["context"], row["supporting_facts"]
    pieces: list[str] = []
    sentences_at: dict[tuple[str, int], tuple[int, str]] = {}
    length = 0
    for title, sentences in zip(paragraphs["title"], paragraphs["sentences"], strict=True):
        head = ("\n\n" if pieces else "") + f"{title}\n"
        pieces.append(head)
        length += len(head)
        for k, sentence in enumerate(sentences):
            sentences_at.setdefault((title, k), (length, sentence))
            pieces.append(sentence)
            length += len(sentence)
    context = "".join(pieces)
    if answer.strip().lower() in ("yes", "no"):
        return None
    start = _word_at(context, answer)
    for title, k in zip(facts["title"], facts["sent_id"], strict=True):
        at, sentence = sentences_at.get((title, int(k)), (0, ""))
        if (offset := _word_at(sentence, answer)) is not None:
            start = at + offset
            break
    if start is None:
        return None
    return SpanRecord(question=row["question"], context=context, answer_text=answer, answer_start=start, id=row["id"])


def triviaqa(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """TriviaQA hub rows (rc): question, question_id, question_source, entity_pages{doc_source[],
    filename[], title[], wiki_context[]}, search_results{description[], filename[], rank[], title[], url[],
    search_context[]}, answer{aliases[], normalized_aliases[], matched_wiki_entity_name,
    normalized_matched_wiki_entity_name, normalized_value, type, value}.

    The evidence has no answer offsets (distant supervision). The context is the first evidence document
    (the Wikipedia pages, then the web results, in the row's order) that holds the answer's value or one of
    its aliases verbatim, whole (the family reads a long context in windows); the answer is the first of
    value and aliases found there, at its first occurrence. The value and every alias are golds. A question
    whose documents hold none of them is rejected.
    """
    answer = row["answer"]
    names = list(dict.fromkeys([answer["value"], *answer["aliases"]]))
    documents = [*row["entity_pages"]["wiki_context"], *row["search_results"]["search_context"]]
    for document in documents:
        found = _first_found(document, names)
        if found is not None:
            text, start = found
            golds = [n for n in names if n]
            return SpanRecord(question=row["question"], context=document, answer_text=text, answer_start=start, id=row["question_id"], answers=golds)
    return None


def _token_text(tokens: dict, start: int, end: int) -> tuple[str, int]:
    """The document's non-HTML tokens in ``[start, end)`` joined by single spaces, and the index of the first."""
    kept = [i for i in range(start, end) if not tokens["is_html"][i]]
    return " ".join(tokens["token"][i] for i in kept), (kept[0] if kept else -1)


def natural_questions(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """Natural Questions hub rows: id, document{html, title, tokens{end_byte[], is_html[], start_byte[],
    token[]}, url}, question{text, tokens[]}, long_answer_candidates{end_byte[], end_token[], start_byte[],
    start_token[], top_level[]}, annotations{id[], long_answer[{candidate_index, end_byte, end_token,
    start_byte, start_token}], short_answers[{end_byte[], end_token[], start_byte[], start_token[], text[]}],
    yes_no_answer[]} (token spans end exclusive).

    Read in the simplest faithful way, as extractive QA over the long answer: the first annotation with a
    short answer gives the record; the context is its long answer and the answer its first short span, both
    as the document's non-HTML tokens joined by single spaces (so the offset is exact; the HTML and byte
    offsets are not read). The first short span of every annotation is a gold. Questions without a short
    answer (no answer, a long answer only, or yes/no) are rejected.
    """
    tokens, annotations = row["document"]["tokens"], row["annotations"]
    golds, chosen = [], None
    for long_answer, shorts in zip(annotations["long_answer"], annotations["short_answers"], strict=True):
        if not shorts["start_token"]:
            continue
        short_start, short_end = int(shorts["start_token"][0]), int(shorts["end_token"][0])
        golds.append(_token_text(tokens, short_start, short_end)[0])
        chosen = chosen or (long_answer, short_start, short_end)
    if chosen is None:
        return None
    long_answer, short_start, short_end = chosen
    context, first = _token_text(tokens, int(long_answer["start_token"]), int(long_answer["end_token"]))
    text, answer_first = _token_text(tokens, short_start, short_end)
    if answer_first < first:
        raise ValueError(f"short answer at tokens {short_start}-{short_end} is not text inside its long answer")
    start = len(_token_text(tokens, first, answer_first)[0]) + (1 if answer_first > first else 0)
    golds = list(dict.fromkeys(golds))
    return SpanRecord(question=row["question"]["text"], context=context, answer_text=text, answer_start=start, id=str(row["id"]), answers=golds)


def newsqa(row: dict, spec: TaskSpec) -> SpanRecord | None:
    """NewsQA hub rows in the MRQA 2019 layout: context, question, answers[] (texts), key,
    labels[{start[], end[]}] (the character spans of each answer, in the order of ``answers``).

    The target is the first answer found in the context at one of its own labelled starts (its end is
    not read: the answer's own length gives it), else, where the labels are not in the answers' order,
    the first found at any labelled start; every answer is a gold. A row without answers is rejected;
    one whose labels are not one per answer, or where no answer lies at a labelled start, is malformed.
    """
    answers, labels, context = row["answers"], row["labels"], row["context"]
    if len(labels) != len(answers):
        raise ValueError(f"{len(labels)} labels for {len(answers)} answers")
    if not answers:
        return None
    starts = [int(s) for label in labels for s in label["start"]]
    own = [(text, int(s)) for text, label in zip(answers, labels) for s in label["start"]]
    for text, start in own + [(text, s) for text in answers for s in starts]:
        if context[start : start + len(text)] == text:
            return SpanRecord(question=row["question"], context=context, answer_text=text, answer_start=start, answers=list(answers))
    raise ValueError(f"no answer lies at a labelled start: {answers[0]!r} at {starts[:3]}")
