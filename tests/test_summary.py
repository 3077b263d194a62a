"""The README's verdict summary (issue 13): counted from a verdicts.csv, never typed; the command prints it
or rewrites the README's block; bad input is one line naming the file and line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ltlib.book import summary
from ltlib.cli import main
from ltlib.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "book" / "data" / "verdicts.csv"


def row(key: str, verdict: str, *, role: str = "claim", prior_source: str = "", calibration: str = "",
        firm: bool = False, mean: float | str = 1.0, low: float | str = 0.5, high: float | str = 1.5,
        n_worlds: int = 3, unit: str = "points", statement: str = "") -> dict:
    return {"key": key, "statement": statement or f"statement of {key}", "artefact": "Fig. 2", "role": role,
            "prior_source": prior_source, "calibration": calibration, "verdict": verdict, "firm": firm,
            "mean": mean, "low": low, "high": high, "n_worlds": n_worlds,
            "per_world": json.dumps([0.9, 1.0, 1.1][:n_worlds]), "unit": unit}


ROWS = [
    row("a", "reproduced", firm=True), row("b", "reproduced", prior_source="estimate", firm=False),
    row("c", "not reproduced", firm=True, mean=-2.0, low=-3.0, high=-1.0),
    row("d", "inconclusive", mean=0.1234, low=-1.0, high=1.25, unit="Spearman ρ"),
    row("e", "not measured", mean="", low="", high="", n_worlds=0),
    row("f", "single run", n_worlds=1, low="", high=""),
    # not counted: other roles and the non-primary variants of a claim
    row("a", "not reproduced", prior_source="truth", firm=True), row("a", "inconclusive", calibration="val"),
    row("g", "reproduced", role="control", firm=True), row("h", "reproduced", role="sanity"),
    row("i", "no verdict", role="descriptive"),
]


def write(tmp_path: Path, rows=ROWS, name: str = "verdicts.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_only_the_primary_claims_are_counted(tmp_path):
    claims = summary.primary_claims(summary.read_verdicts(write(tmp_path)))
    assert list(claims["key"]) == ["a", "b", "c", "d", "e", "f"]
    counts = summary.verdict_counts(claims)
    assert (counts["reproduced"], counts["not reproduced"], counts["inconclusive"], counts["not measured"],
            counts["single run"], counts["firm"]) == (2, 1, 1, 1, 1, 2)


def test_the_reports_headline_column_picks_each_claims_headline_variant(tmp_path):
    # a claim judged only against the truth (GLA-Train must never be scored against the prior it trained
    # with) has no estimate variant: its headline is its first listed source
    rows = [{**row("t", "reproduced", prior_source="truth"), "headline": True},
            {**row("t", "inconclusive", prior_source="reference"), "headline": False},
            {**row("u", "inconclusive", prior_source="estimate"), "headline": True},
            {**row("u", "reproduced", prior_source="estimate", calibration="val"), "headline": False}]
    claims = summary.primary_claims(summary.read_verdicts(write(tmp_path, rows)))
    assert list(zip(claims["key"], claims["verdict"])) == [("t", "reproduced"), ("u", "inconclusive")]


def test_the_summary_states_counts_firmness_worlds_and_a_row_per_claim(tmp_path):
    text = summary.render_summary(summary.read_verdicts(write(tmp_path)), source="book/data/verdicts.csv")
    headline = text.splitlines()[0]
    assert "**6 registered claims** of the paper's" in headline
    assert "0–3" not in headline and "1–3 independent worlds" in headline
    for part in ("**2 reproduced**", "**1 not reproduced**", "**1 inconclusive**", "**1 not measured**",
                 "**1 not measured**, 1 single run.", "**2 of the 3 decisive verdicts are firm**",
                 "`book/data/verdicts.csv`"):
        assert part in headline, part
    table = [line for line in text.splitlines() if line.startswith("| statement of")]
    assert table == ["| statement of a | reproduced | yes | 1 [0.5, 1.5] points |",
                     "| statement of b | reproduced | no | 1 [0.5, 1.5] points |",
                     "| statement of c | not reproduced | yes | -2 [-3, -1] points |",
                     "| statement of d | inconclusive | – | 0.123 [-1, 1.25] Spearman ρ |",
                     "| statement of e | not measured | – | – |",
                     "| statement of f | single run | – | 1 points |"]


def test_a_pipe_or_line_break_in_a_statement_stays_inside_its_cell(tmp_path):
    rows = [row("a", "reproduced", statement="P_P | C\nmatters")]
    text = summary.render_summary(summary.read_verdicts(write(tmp_path, rows)))
    assert "| P_P \\| C matters | reproduced | no |" in text
    assert "one world" not in text and "3 independent worlds" in text


@pytest.mark.parametrize("change, message", [
    ({"verdict": "partly"}, "line 3: verdict 'partly'"),
    ({"role": "claims"}, "line 3: role 'claims'"),
    ({"firm": "maybe"}, "line 3: firm 'maybe'"),
    ({"mean": "1.0.0"}, "line 3: mean '1.0.0' is not a number"),
    ({"n_worlds": "2.5"}, "line 3: n_worlds '2.5' is not a count"),
    ({"per_world": "[1, 2"}, "line 3: per_world is not a JSON list"),
    ({"per_world": '["x"]'}, "line 3: per_world"),
])
def test_a_bad_value_names_the_file_and_line(tmp_path, change, message):
    path = write(tmp_path, [ROWS[0], {**ROWS[1], **change}])
    with pytest.raises(ConfigError, match="verdicts.csv, " + message.replace("[", r"\[")):
        summary.read_verdicts(path)


def test_a_missing_file_or_column_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.csv: no such verdicts file"):
        summary.read_verdicts(tmp_path / "nope.csv")
    path = write(tmp_path, [{k: v for k, v in ROWS[0].items() if k != "firm"}])
    with pytest.raises(ConfigError, match=r"verdicts.csv: missing column\(s\) \['firm'\]"):
        summary.read_verdicts(path)


def test_the_block_between_the_markers_is_replaced_and_nothing_else():
    text = f"# title\n\nbefore\n{summary.START}\nold\nlines\n{summary.END}\nafter\n"
    new = summary.replace_block(text, "new block\n")
    assert new == f"# title\n\nbefore\n{summary.START}\nnew block\n{summary.END}\nafter\n"
    assert summary.readme_block(new) == "new block\n"
    for broken in ("no markers", f"{summary.END}\n{summary.START}", f"{summary.START}\n{summary.START}\n{summary.END}"):
        with pytest.raises(ConfigError, match="README.md: expected one"):
            summary.replace_block(broken, "x")


def test_the_command_prints_the_summary(tmp_path, capsys):
    path = write(tmp_path)
    assert main(["summary", "--verdicts", str(path)]) == 0
    assert capsys.readouterr().out == summary.render_summary(summary.read_verdicts(path), source=str(path))


def test_the_command_rewrites_the_readme_block(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{summary.START}\nstale\n{summary.END}\ntail\n")
    assert main(["summary", "--verdicts", "verdicts.csv", "--write-readme", str(readme)]) == 0
    expected = summary.render_summary(summary.read_verdicts(path), source="verdicts.csv")
    assert readme.read_text() == f"# x\n{summary.START}\n{expected}{summary.END}\ntail\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


@pytest.mark.parametrize("case", ["bad verdict", "no markers", "no file"])
def test_command_errors_are_one_line_naming_the_file_exit_2(tmp_path, capsys, case):
    path = write(tmp_path, [ROWS[0], {**ROWS[1], "verdict": "partly"}] if case == "bad verdict" else ROWS)
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    if case == "no file":
        path = tmp_path / "missing.csv"
    assert main(["summary", "--verdicts", str(path), "--write-readme", str(readme)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    named = str(readme) if case == "no markers" else str(path)
    assert len(errors) == 1 and named in errors[0], errors
    assert readme.read_text() == "# no markers here\n"


def test_the_readme_block_is_the_rendering_of_the_committed_snapshot(monkeypatch):
    if not SNAPSHOT.is_file():  # then the block may hold no verdicts at all, only the note that none are in
        block = summary.readme_block((REPO / "README.md").read_text())
        assert "|" not in block and "reproduced" not in block and "book/data/verdicts.csv" in block
        pytest.skip("book/data/verdicts.csv is not committed yet (the lead commits it from the final build)")
    monkeypatch.chdir(REPO)
    expected = summary.render_summary(summary.read_verdicts(SNAPSHOT), source="book/data/verdicts.csv")
    assert summary.readme_block((REPO / "README.md").read_text()) == expected, \
        "run: python -m ltlib summary --verdicts book/data/verdicts.csv --write-readme README.md"
