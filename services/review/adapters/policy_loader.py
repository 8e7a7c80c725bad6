"""The no-prior-authorization list (YAML) to :class:`NoPriorAuthList`, strictly.

File shape::

    version: "2026.1"
    entries:
      - codes: ["99213", "99214"]
        lines_of_business: [medicare_advantage, commercial]
        reason: office visit
        source: the public list it rests on

Unknown or missing keys, duplicate keys, values of the wrong YAML type, codes that are neither CPT
nor HCPCS shaped, unknown lines of business and a code listed twice for one line of business are
refused with a :class:`PolicyFileError` naming the file and the field (``entries[2].codes[1]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from services.common.config_files import ConfigFileError, FileModel, Text, parse, read_yaml
from services.review.domain.policy import InvalidPolicy, NoPriorAuthEntry, NoPriorAuthList

DEFAULT_NO_PA_LIST = Path(__file__).resolve().parents[1] / "policy" / "no-prior-auth.yaml"


class PolicyFileError(ConfigFileError):
    """One problem in one policy file: str is ``"file.yaml: field.path: problem"``."""


class NoPriorAuthFileEntry(FileModel):
    codes: Annotated[list[Text], Field(min_length=1)]
    lines_of_business: Annotated[list[Text], Field(min_length=1)]
    reason: Text
    source: Text


class NoPriorAuthFile(FileModel):
    version: Text
    entries: list[NoPriorAuthFileEntry]


def parse_no_prior_auth(doc: object, path: Path) -> NoPriorAuthList:
    """The list a parsed YAML document describes; raises :class:`PolicyFileError`."""
    top = parse(NoPriorAuthFile, doc, path, PolicyFileError)
    entries: list[NoPriorAuthEntry] = []
    seen: dict[tuple[str, str], str] = {}
    for i, entry in enumerate(top.entries):
        where = f"entries[{i}]"
        for j, lob in enumerate(entry.lines_of_business):
            for k, code in enumerate(entry.codes):
                field = f"{where}.codes[{k}]"
                if (lob, code) in seen:
                    raise PolicyFileError(path, field, f"{code!r} is already listed for {lob} at {seen[(lob, code)]}")
                seen[(lob, code)] = field
                candidate = NoPriorAuthEntry(code, lob, entry.reason, entry.source)
                try:
                    NoPriorAuthList((candidate,))
                except InvalidPolicy as exc:
                    bad_field = field if exc.field.endswith(".code") else f"{where}.lines_of_business[{j}]"
                    raise PolicyFileError(path, bad_field, exc.problem) from exc
                entries.append(candidate)
    return NoPriorAuthList(tuple(entries), name=path.name)


def load_no_prior_auth(path: Path | str) -> NoPriorAuthList:
    """Read and validate the no-prior-authorization list at ``path``."""
    file = Path(path)
    return parse_no_prior_auth(read_yaml(file, PolicyFileError), file)
