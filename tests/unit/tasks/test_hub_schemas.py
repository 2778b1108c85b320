"""Hub-only catalog entries (no files in the data mirror) normalize rows in their hub schema, as
each dataset card documents it: one fixture per entry under tests/fixtures/hub_rows/ (its header
cites the card's field list), read through the entry's own hub normalizer as the data stage reads
a hub download. A new hub-only entry without a fixture fails the first test; a download that lacks a
column the normalizer reads fails the data stage, naming the entry and the column."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from muppet_core.data.prepare import normalize_rows
from muppet_core.data.sources import mirror_files
from muppet_core.errors import DataSourceError
from muppet_core.registry import resolve
from muppet_core.tasks.catalog import get_task, load_catalog

FIXTURES = Path(__file__).parents[2] / "fixtures" / "hub_rows"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))


def test_every_hub_only_entry_has_a_fixture(mirror):
    hub_only = {name for name, spec in load_catalog().items() if mirror_files(spec, mirror) is None}
    with_fixture = set(NAMES)
    assert with_fixture <= hub_only, with_fixture - hub_only  # a fixture for an entry the mirror serves is not a hub-only test
    assert hub_only - with_fixture == set(), f"hub-only entries without a fixture in {FIXTURES}"


@pytest.mark.parametrize("name", NAMES)
def test_hub_rows_normalize_as_the_card_documents_them(name):
    fixture = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    assert all(list(row) == fixture["columns"] for row in fixture["rows"]), "each row has exactly the card's columns"
    spec = get_task(name)
    records, stats = normalize_rows(spec, "train", fixture["rows"], resolve(spec.hub_normalizer()))
    got = [{k: v for k, v in dataclasses.asdict(r).items() if k in expected} for r, expected in zip(records, fixture["records"])]
    assert got == fixture["records"] and len(records) == len(fixture["records"]), stats


@pytest.mark.parametrize("name", NAMES)
def test_a_download_without_a_card_column_fails_naming_it(name):
    """Rows that lack one of the card's columns (a hub dataset whose schema changed) either normalize
    to the fixture's own records (the normalizer does not read that column) or fail the split with one
    DataSourceError naming the entry and the column: never other records, nor rows silently dropped."""
    fixture = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    spec = get_task(name)
    normalizer = resolve(spec.hub_normalizer())
    expected, _ = normalize_rows(spec, "train", fixture["rows"], normalizer)
    read = []
    for column in fixture["columns"]:
        rows = [{k: v for k, v in row.items() if k != column} for row in fixture["rows"]]
        try:
            records, stats = normalize_rows(spec, "train", rows, normalizer)
        except DataSourceError as exc:
            assert f"dataset '{name}'" in str(exc) and repr(column) in str(exc), str(exc)
            read.append(column)
        else:
            assert records == expected, f"without {column!r} the rows normalize otherwise: {stats}"
    assert read, "the normalizer reads none of the card's columns"


@pytest.mark.parametrize("name, change", [
    ("hotpotqa", {"answer": "yes", "context": {"title": ["Polls"], "sentences": [["Most voters said yes."]]}}),
    ("record", {"answers": []}),
    ("newsqa", {"answers": [], "labels": []}),
    ("triviaqa", {"answer": {"aliases": ["Paris"], "normalized_aliases": ["paris"], "matched_wiki_entity_name": "Paris",
                             "normalized_matched_wiki_entity_name": "paris", "normalized_value": "paris", "type": "WikipediaEntity", "value": "Paris"}}),
])
def test_a_question_without_an_answer_in_its_context_is_rejected(name, change):
    """Beside the fixtures' own rejected rows (DROP's number answer, Natural Questions' yes/no): a yes/no
    answer, a row without answers, an answer that no evidence document holds."""
    fixture = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    spec = get_task(name)
    assert resolve(spec.hub_normalizer())({**fixture["rows"][0], **change}, spec) is None


def test_an_answer_found_without_offsets_is_placed_on_whole_words_not_inside_a_longer_word():
    from muppet_core.tasks.normalizers.span import triviaqa

    document = "The Ionian Sea lies south of the Adriatic. Io is a moon of Jupiter."
    row = {"question": "Which moon of Jupiter is named after a priestess of Hera?", "question_id": "tq1",
           "answer": {"value": "Io", "aliases": ["Io"]}, "entity_pages": {"wiki_context": [document]}, "search_results": {"search_context": []}}
    record = triviaqa(row, get_task("triviaqa"))
    assert record.answer_start == document.index("Io is") and record.context[record.answer_start:record.answer_start + 2] == "Io"

    from muppet_core.tasks.normalizers.span import hotpotqa

    sentences = ["The Ionian Sea lies south of the Adriatic.", " Io is a moon of Jupiter."]
    row = {"id": "hp1", "question": "Which moon is named after a priestess of Hera?", "answer": "Io",
           "supporting_facts": {"title": ["Moons"], "sent_id": [0]}, "context": {"title": ["Moons"], "sentences": [sentences]}}
    record = hotpotqa(row, get_task("hotpotqa"))  # the supporting fact holds "Io" only inside "Ionian"
    assert record.context[record.answer_start - 1:record.answer_start + 6] == " Io is "


EXPECTS_REJECTIONS = sorted(name for name, spec in load_catalog().items() if spec.max_rejected_fraction is not None)


@pytest.mark.parametrize("name", EXPECTS_REJECTIONS)
def test_rows_broken_by_a_schema_change_are_not_hidden_in_the_share_of_rejected_ones(name):
    """An entry whose normalizer rejects a known share of questions by design (``max_rejected_fraction``)
    still fails a split where a quarter of the rows lack a column it reads: malformed rows have their own
    budget (``max_bad_fraction``), not the rejected rows'. Rejections beyond their share fail too."""
    fixture = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    spec = get_task(name)
    normalizer = resolve(spec.hub_normalizer())
    rows = fixture["rows"] * 4
    records, stats = normalize_rows(spec, "train", rows, normalizer)  # the fixture's own rejections are within the share
    column = next(c for c in fixture["columns"] if c in {"answers_spans", "annotations", "answer", "answers", "context", "passage"})
    broken = [{k: v for k, v in row.items() if k != column or i % 4} for i, row in enumerate(rows)]
    with pytest.raises(DataSourceError, match=rf"dataset '{name}' split 'train': {len(rows) // 4} of {len(rows)} rows are malformed"):
        normalize_rows(spec, "train", broken, normalizer)
    unanswerable = [{"no answer": True}] * round(len(rows) * 10 * spec.max_rejected_fraction)
    with pytest.raises(DataSourceError, match=rf"its normalizer rejected \d+ of {len(rows) + len(unanswerable)} rows \(more than max_rejected_fraction"):
        normalize_rows(spec, "train", rows + unanswerable, lambda row, spec: None if "no answer" in row else normalizer(row, spec))


def test_newsqa_places_its_answer_where_the_labels_say_even_out_of_the_answers_order():
    """NewsQA's labels give each answer's character spans in the answers' order; a row whose labels come
    in another order still gets its answer at the start where the context holds it (not the first
    answer at the first label's start, a span of other text), and a row where no answer lies at any
    labelled start is malformed, not a record with a wrong span."""
    from muppet_core.tasks.normalizers.span import newsqa

    row = yaml.safe_load((FIXTURES / "newsqa.yaml").read_text())["rows"][1]
    record = newsqa({**row, "labels": row["labels"][::-1]}, get_task("newsqa"))
    assert (record.answer_text, record.answer_start) == ("a two-day search", 82)
    assert record.context[82 : 82 + len(record.answer_text)] == record.answer_text
    with pytest.raises(ValueError, match="no answer lies at a labelled start"):
        newsqa({**row, "labels": [{"start": [3], "end": [9]}, {"start": [4], "end": [9]}]}, get_task("newsqa"))
