"""``urctl criteria validate [PATH ...]``: load criteria files and their vocabulary as the review
service would, and name every problem as ``file: field: problem`` (a vocabulary's included: an
unknown fact, a malformed code pattern, mappings that contradict each other or a criteria example's
stated fact, a worked example that fails)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from services.cli.base import EXIT_OK, EXIT_SERVICE_ERROR, Targets
from services.cli.criteria.library import Validation, criteria_paths, validate_paths
from services.cli.render import plain
from services.common.config_files import ConfigFileError
from services.review.domain.criteria import version_key


def problem_json(e: ConfigFileError) -> dict[str, str]:
    """A problem as ``--json`` reports it."""
    return {"file": str(e.path), "field": e.field, "problem": e.problem}


def print_problems(console: Console, problems: Sequence[ConfigFileError]) -> None:
    """Each problem on one line as ``file: field: problem``, in red."""
    for e in problems:  # one whole line each, never wrapped: "file: field: problem"
        console.print(plain(str(e), "red"), soft_wrap=True)


def cmd_validate(args: argparse.Namespace, targets: Targets, console: Console) -> int:
    result = validate_paths(criteria_paths(args))
    if args.json:
        print(json.dumps({
            "valid": [{"file": str(s.path), "id": s.criteria.id, "version": s.criteria.version,
                       "category": s.criteria.category, "sha256": s.criteria.content_hash,
                       "service_codes": len(s.criteria.service_codes), "examples": len(s.criteria.examples)}
                      for s in result.sets],
            "vocabularies": [{"file": str(v.path), "id": v.vocabulary.id, "version": v.vocabulary.version,
                              "sha256": v.vocabulary.content_hash, "mappings": len(v.vocabulary.mappings),
                              "examples": len(v.vocabulary.examples)} for v in result.vocabularies],
            "problems": [problem_json(e) for e in result.problems]}, indent=2))
        return EXIT_OK if result.ok else EXIT_SERVICE_ERROR
    if result.sets:
        table = Table(title=f"{len(result.sets)} valid criteria set(s)", box=box.SIMPLE_HEAD, pad_edge=False,
                      show_edge=False, collapse_padding=True)
        for column in ("id", "version", "category", "codes", "examples", "sha256"):
            table.add_column(column, no_wrap=column != "category", overflow="fold",
                             min_width=14 if column == "category" else None,
                             justify="right" if column in ("codes", "examples") else "left")
        for s in sorted(result.sets, key=lambda s: (s.criteria.id, version_key(s.criteria.version))):
            c = s.criteria
            table.add_row(plain(c.id, "bold"), plain(c.version), plain(c.category.replace("_", " ")),
                          plain(len(c.service_codes)), plain(len(c.examples)), plain(c.content_hash[:10], "dim"))
        console.print(table)
    if result.vocabularies:
        console.print(_vocabulary_table(result))
    if result.problems:
        print_problems(console, result.problems)
        files = len({e.path for e in result.problems})
        console.print(plain(f"{len(result.problems)} problem(s) in {files} file(s): "
                            "these criteria would not load", "bold red"))
        return EXIT_SERVICE_ERROR
    console.print(plain("every criteria file is valid" + (" and every vocabulary fits the criteria"
                                                          if result.vocabularies else ""), "green"))
    return EXIT_OK


def _vocabulary_table(result: Validation) -> Table:
    table = Table(title=f"{len(result.vocabularies)} valid vocabular{'y' if len(result.vocabularies) == 1 else 'ies'} "
                        "(codes and words that imply criteria facts)", box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False, collapse_padding=True)
    for column in ("id", "version", "title", "mappings", "examples", "sha256"):
        table.add_column(column, no_wrap=column != "title", overflow="fold",
                         justify="right" if column in ("mappings", "examples") else "left")
    for v in sorted(result.vocabularies, key=lambda v: v.vocabulary.id):
        w = v.vocabulary
        table.add_row(plain(w.id, "bold"), plain(w.version), plain(w.title), plain(len(w.mappings)),
                      plain(len(w.examples)), plain(w.content_hash[:10], "dim"))
    return table
