"""Mutants of what mutmut cannot mutate: decorated functions (properties, validators, context managers,
`torch.no_grad` functions) and module-level tables (op and cell registrations, the resume settings, limits).

    python tests/mutate_the_rest.py --list                # how many candidates, by kind
    python tests/mutate_the_rest.py --sample 40 --seed 29 # a simple random sample, each run against its tests

mutmut 3 puts every function behind a trampoline, which a decorator would wrap, so it leaves decorated
functions alone, and it never mutates module-level statements. This script plants mutmut's kinds of one-token
change (a comparison or boolean operator turned, a number moved by one, a string or flag changed, a `not`
dropped, an arithmetic operator swapped) in those places, one at a time, in a copy of the repository, and runs
the test files that name what was mutated most often (the function, property or table; the core's where none
does), stopping at the first failure (with --survivors-run-all, a mutant they let through then runs every test, as
mutmut's survivors do). A mutant no test fails survives. Results go to standard output and,
with --json, to a file.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ("oracle", "model", "valid_specs", "invalid_specs", "sizes", "train")
LEFT_OUT = ("test_killed_runs.py", "test_recipe.py", "test_cuda.py", "test_gpu_benchmark.py")
SWAP_COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
SWAP_BINARY = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult}


@dataclass(frozen=True)
class Mutant:
    file: str  # relative to the repository
    where: str  # the function (Class.name) or table it is in
    kind: str  # "decorated" or "table"
    line: int
    col: int
    end_line: int
    end_col: int
    replacement: str
    original: str

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line}:{self.col} {self.where}: {self.original!r} -> {self.replacement!r}"


def _mutations(node: ast.AST) -> list[ast.AST]:
    """The one-token changes of `node` (a new node each), as mutmut makes them."""
    made: list[ast.AST] = []
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAP_COMPARE:
        made.append(ast.Compare(node.left, [SWAP_COMPARE[type(node.ops[0])]()], node.comparators))
    elif isinstance(node, ast.BoolOp):
        made.append(ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values))
    elif isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINARY:
        made.append(ast.BinOp(node.left, SWAP_BINARY[type(node.op)](), node.right))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        made.append(node.operand)
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            made.append(ast.Constant(not value))
        elif isinstance(value, (int, float)):
            made.append(ast.Constant(value + 1))
        elif isinstance(value, str) and value:
            made.append(ast.Constant(f"XX{value}XX"))
    return made


def _owner_names(tree: ast.Module) -> list[tuple[ast.AST, str, str]]:
    """(node, where, kind) for every decorated function and module-level table (with the name it is known by)."""
    found = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for stmt in body:
            if isinstance(stmt, ast.ClassDef):
                visit(stmt.body, f"{prefix}{stmt.name}.")
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                decorators = [ast.unparse(d) for d in stmt.decorator_list]
                if decorators and not any("abstractmethod" in d for d in decorators):
                    found.append((stmt, f"{prefix}{stmt.name}", "decorated"))
                visit(stmt.body, f"{prefix}{stmt.name}.")
            elif not prefix and isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.For)) and not (
                    isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == "__all__"):
                target = stmt.target if isinstance(stmt, (ast.AnnAssign, ast.For)) else stmt.targets[0]
                value = stmt.iter if isinstance(stmt, ast.For) else stmt.value
                if isinstance(value, (ast.Dict, ast.Tuple, ast.List, ast.Set, ast.Call)):
                    found.append((stmt, ast.unparse(target) if not isinstance(stmt, ast.For) else "registrations",
                                  "table"))

    visit(tree.body, "")
    return found


def candidates() -> list[Mutant]:
    mutants = []
    for path in sorted((ROOT / "cortexgraph").rglob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        for owner, where, kind in _owner_names(tree):
            body = owner.body if kind == "decorated" else [owner]
            # the parts of f-strings have no source of their own, and a docstring is not code
            skip = {id(part) for s in ast.walk(owner) if isinstance(s, ast.JoinedStr) for part in ast.walk(s)}
            if kind == "decorated" and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
            for stmt in body:
                for node in ast.walk(stmt):
                    original = ast.get_source_segment(text, node)
                    if id(node) in skip or original is None or (
                            "\n" in original and not isinstance(node, (ast.BoolOp, ast.Compare))):
                        continue
                    for mutated in _mutations(node):
                        mutants.append(Mutant(str(path.relative_to(ROOT)), where, kind, node.lineno, node.col_offset,
                                              node.end_lineno, node.end_col_offset, ast.unparse(mutated), original))
    return mutants


def _span(text: str, m: Mutant) -> tuple[int, int]:
    """Where the mutated node's source is in `text`, in bytes (ast's columns are UTF-8 offsets)."""
    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line.encode()))
    return offsets[m.line - 1] + m.col, offsets[m.end_line - 1] + m.end_col


def _apply(text: str, m: Mutant) -> str:
    start, end = _span(text, m)
    data = text.encode()
    replacement = m.replacement if "\n" not in m.original else f"({m.replacement})"
    return (data[:start] + replacement.encode() + data[end:]).decode()


def _in_place(text: str, m: Mutant) -> bool:
    start, end = _span(text, m)
    return text.encode()[start:end].decode(errors="replace") == m.original


def _tests_for(m: Mutant, most: int = 5) -> list[str]:
    """The test files that name what was mutated most often, at most `most` of them: the function or table
    (for a private method, its class), else the module (`drawing_views`, else `drawing`); the core's (the
    oracle, the model, specs valid and invalid, sizes, training) where none does."""
    parts = m.where.split(".")
    word = parts[-2] if m.kind == "decorated" and parts[-1].startswith("_") and len(parts) > 1 else parts[-1]
    files = [p for p in sorted((ROOT / "tests").glob("test_*.py")) if p.name not in LEFT_OUT]
    for name in (word.lstrip("_"), Path(m.file).stem, Path(m.file).stem.split("_")[0]):
        mentions = {p: len(re.findall(rf"\b_?{re.escape(name)}\b", p.read_text())) for p in files}
        named = sorted((p for p in files if mentions[p]), key=lambda p: -mentions[p])[:most]
        if named:
            return [str(p.relative_to(ROOT)) for p in named]
    return [f"tests/test_{name}.py" for name in CORE]


def _pytest(work: Path, tests: list[str], timeout: int) -> tuple[str, list[str]]:
    """killed (and the first test that failed), survived or timeout."""
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m",
                               "not dynamo and not cuda", *tests], cwd=work, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return "timeout", []
    return ("survived" if done.returncode == 0 else "killed"), re.findall(r"^FAILED (\S+)", done.stdout, re.M)[:1]


EVERY_TEST = ["tests", *(f"--ignore=tests/{name}" for name in LEFT_OUT)]


def run(m: Mutant, work: Path, timeout: int, tests: list[str], everything: bool) -> dict:
    source = work / m.file
    original = source.read_text()
    if not _in_place(original, m):
        return {"mutant": m.name, "status": "moved", "seconds": 0.0, "tests": []}  # the code changed since
    source.write_text(_apply(original, m))
    try:
        ast.parse(source.read_text())
    except SyntaxError:
        source.write_text(original)
        return {"mutant": m.name, "status": "invalid", "seconds": 0.0, "tests": []}
    began = time.monotonic()
    try:
        status, failed = _pytest(work, tests, timeout)
        if status == "survived" and everything:  # as mutmut does: a survivor of its own tests runs them all
            tests = EVERY_TEST
            status, failed = _pytest(work, tests, timeout)
    finally:
        source.write_text(original)
    return {"mutant": m.name, "status": status, "seconds": round(time.monotonic() - began, 1), "tests": tests,
            "failed": failed, **asdict(m)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per mutant")
    parser.add_argument("--survivors-run-all", action="store_true",
                        help="a mutant its own tests let through runs every test (minutes each)")
    parser.add_argument("--again", metavar="FILE", help="run the survivors of an earlier --json against every test")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    everything = candidates()
    if args.again:  # the survivors as they were drawn (each checked to be where it was before it is planted)
        fields = Mutant.__dataclass_fields__
        everything = [Mutant(**{k: r[k] for k in fields}) for r in json.loads(Path(args.again).read_text())
                      if r["status"] == "survived"]
        args.sample = len(everything)
    if args.list:
        by = {}
        for m in everything:
            by[m.kind] = by.get(m.kind, 0) + 1
        print(f"{len(everything)} mutants: " + ", ".join(f"{n} {k}" for k, n in sorted(by.items())))
        return
    sample = random.Random(args.seed).sample(everything, min(args.sample, len(everything)))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", ".git", "mutants", "__pycache__",
                                                                  "runs", "data", "*.egg-info"))
        for i, m in enumerate(sample, 1):
            tests = EVERY_TEST if args.again else _tests_for(m)
            result = run(m, work, args.timeout, tests, args.survivors_run_all and not args.again)
            results.append(result)
            print(f"[{i}/{len(sample)}] {result['status']:8s} {result['seconds']:6.1f}s {m.name}", flush=True)
    counts = {s: sum(r["status"] == s for r in results) for s in ("killed", "survived", "timeout", "invalid", "moved")}
    print(counts)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
