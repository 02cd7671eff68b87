"""A small reader of this repository's Dockerfiles, for checks that need no Docker engine.

It understands what our Dockerfiles use: comments and parser directives, line continuations,
flags (``--from=``, ``--interval=``), exec form (JSON arrays) and shell form, ``ENV k=v``,
``HEALTHCHECK [flags] CMD ...``, and stages with ``FROM image AS name``. It refuses what it does
not understand (heredocs, a changed escape character) instead of guessing. hadolint, run by the
tests too, parses the same files with a full parser.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_FLAG = re.compile(r"--([a-z-]+)(?:=(\S*))?\s*")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the text after the keyword and flags, continuations joined
    flags: dict[str, str]
    line: int  # 1-based line of the keyword

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array form (``["a", "b"]``), or None for shell form."""
        return _json_array(self.args)


@dataclass
class Stage:
    base: str  # an image reference or an earlier stage's name
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _json_array(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) per instruction: comments dropped, continuations joined."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if re.match(r"#\s*escape\s*=", stripped) and not out and not buf:
            raise ValueError(f"line {number}: the escape directive is not supported")
        if stripped.startswith("#") or (not stripped and not buf):
            continue  # comments (also inside a continuation) and blank lines
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        out.append((start, " ".join(b for b in buf if b)))
        buf = []
    if buf:
        raise ValueError(f"line {start}: the file ends inside a line continuation")
    return out


def parse(text: str) -> list[Instruction]:
    instructions = []
    for number, line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if not re.fullmatch(r"[A-Z]+", keyword):
            raise ValueError(f"line {number}: {keyword!r} is not an instruction")
        if re.search(r"<<-?[\"']?[A-Za-z_]", rest) and keyword in ("RUN", "COPY", "ADD"):
            raise ValueError(f"line {number}: heredocs are not supported")
        flags: dict[str, str] = {}
        rest = rest.strip()
        while m := _FLAG.match(rest):
            flags[m.group(1)] = m.group(2) or ""
            rest = rest[m.end() :]
        instructions.append(Instruction(keyword, rest.strip(), flags, number))
    if not instructions or instructions[0].keyword not in ("FROM", "ARG"):
        raise ValueError("a Dockerfile starts with FROM (or ARG)")
    return instructions


def stages(text: str) -> list[Stage]:
    """The stages in order; instructions before the first FROM (global ARGs) are dropped."""
    result: list[Stage] = []
    for ins in parse(text):
        if ins.keyword == "FROM":
            parts = ins.args.split()
            if len(parts) == 3 and parts[1].upper() == "AS":
                result.append(Stage(parts[0], parts[2].lower()))
            elif len(parts) == 1:
                result.append(Stage(parts[0], None))
            else:
                raise ValueError(f"line {ins.line}: cannot read FROM {ins.args!r}")
        elif result:
            result[-1].instructions.append(ins)
    return result


def read(path: Path) -> list[Stage]:
    return stages(path.read_text())


def by_name(all_stages: list[Stage]) -> dict[str, Stage]:
    return {s.name: s for s in all_stages if s.name}


def chain(all_stages: list[Stage], name: str) -> list[Stage]:
    """The stage ``name`` and the stages it is built FROM, nearest first."""
    named = by_name(all_stages)
    out = [named[name]]
    while out[-1].base in named:
        out.append(named[out[-1].base])
    return out


def effective(all_stages: list[Stage], name: str, keyword: str) -> Instruction | None:
    """The instruction in force for ``keyword`` in stage ``name`` (inherited from its bases)."""
    for stage in chain(all_stages, name):
        found = stage.last(keyword)
        if found is not None:
            return found
    return None


def env(all_stages: list[Stage], name: str) -> dict[str, str]:
    """ENV in force in stage ``name`` (``$VAR`` references are left as written)."""
    result: dict[str, str] = {}
    for stage in reversed(chain(all_stages, name)):
        for ins in stage.all("ENV"):
            tokens = shlex.split(ins.args)
            if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
                result[tokens[0]] = " ".join(tokens[1:])
                continue
            for token in tokens:
                key, _, value = token.partition("=")
                result[key] = value
    return result


def healthcheck_command(ins: Instruction) -> list[str]:
    """The exec-form command of ``HEALTHCHECK [flags] CMD [...]``."""
    keyword, _, rest = ins.args.partition(" ")
    command = _json_array(rest.strip())
    if keyword.upper() != "CMD" or command is None:
        raise ValueError(f"line {ins.line}: HEALTHCHECK is not `CMD [exec form]`")
    return command
