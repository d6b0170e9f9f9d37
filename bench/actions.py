"""Action-items sections on the shared corpus: found vs expected, per file and in total.

    .venv/bin/python bench/actions.py [--shared ../shared] [--all]

Expected comes from bench/data/action-sections.tsv (SOURCES.md's tables, plus a reading of
each file): `yes` / `partial` means the file has a section headed as written, `no` means
it has none (or the excerpt does not contain it). Counted:

* false "missing": the check says "No action-items section was found" where there is one;
* missed sections: the expected heading is not the title of, or a heading inside, a
  section that was found;
* extra: a section found in a file the table says has none (shown, not a target: the
  table follows SOURCES.md, which counts only formal sections).

Prints numbers; asserts nothing (tests/test_actions.py holds the targets).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp.actions import action_sections, check_action_items  # noqa: E402
from nlp.text import parse  # noqa: E402
from rules.action_words import heading_words  # noqa: E402
from rules.policy import ActionPolicy  # noqa: E402

TABLE = ROOT / "bench" / "data" / "action-sections.tsv"


@dataclass(frozen=True)
class Row:
    file: str
    expected: str  # yes | partial | no
    heading: str
    found: tuple[str, ...]  # titles of the sections found
    says_missing: bool  # the check reported actions.missing-section
    heading_found: bool  # the expected heading heads, or sits inside, a found section
    items: int

    @property
    def has_section(self) -> bool:
        return self.expected in ("yes", "partial")

    @property
    def false_missing(self) -> bool:
        return self.has_section and self.says_missing

    @property
    def missed(self) -> bool:
        return self.has_section and not self.heading_found

    @property
    def extra(self) -> bool:
        return not self.has_section and bool(self.found)


def shared_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("PMGUARD_SHARED") or ROOT.parent / "shared").resolve()


def evaluate(shared: Path, policy: ActionPolicy | None = None) -> list[Row]:
    """One row per file of the table, read from `shared`/corpus."""
    policy = policy or ActionPolicy()
    rows: list[Row] = []
    with TABLE.open(encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh, delimiter="\t"):
            source = (shared / "corpus" / rec["file"]).read_text(encoding="utf-8")
            doc = parse(source, "markdown")
            sections = action_sections(doc, policy)
            check = check_action_items(doc, policy)
            inside = {heading_words(s.title) for s in sections} | {
                heading_words(b.text) for s in sections for b in s.blocks if b.kind == "heading"
            }
            rows.append(
                Row(
                    file=rec["file"],
                    expected=rec["has_section"],
                    heading=rec["heading"],
                    found=tuple(s.title for s in sections),
                    says_missing=any(f.rule == "actions.missing-section" for f in check.findings),
                    heading_found=heading_words(rec["heading"]) in inside,
                    items=len(check.items),
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", help="the shared folder (default ../shared)")
    parser.add_argument("--all", action="store_true", help="list every file, not only errors")
    args = parser.parse_args(argv)
    rows = evaluate(shared_dir(args.shared))
    for row in rows:
        mark = (
            "FALSE-MISSING"
            if row.false_missing
            else "MISSED"
            if row.missed
            else "extra"
            if row.extra
            else "ok"
        )
        if args.all or mark != "ok":
            found = "; ".join(row.found) or "-"
            print(
                f"{mark:13} {row.file:70} expected={row.expected:7} "
                f"heading={row.heading!r:50} found={found!r} items={row.items}"
            )
    for group in ("postmortems/", "templates/"):
        part = [r for r in rows if r.file.startswith(group)]
        print(
            f"{group:13} files={len(part)} with-section={sum(r.has_section for r in part)} "
            f"false-missing={sum(r.false_missing for r in part)} "
            f"missed-sections={sum(r.missed for r in part)} extra={sum(r.extra for r in part)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
