#!/usr/bin/env python3
"""Report files of a crate that import each other, directly or round a loop.

    python3 scripts/module-cycles.py [crates/NAME ...]   (default: every crate)

For each crate, every source file under src/ is a module. A file depends on
another when it names it: `crate::a::...`, `super::a`, `use crate::{a, b}`,
or an item that lib.rs re-exports from `a` (`crate::Item`). lib.rs's own
`mod` and `pub use` lines build the module tree and are not counted as
imports. Exits 1, listing each loop, when any loop exists.
"""
import os
import re
import sys


def modules(src):
    """Map module path (tuple) -> file, for every .rs file under src."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("lib", "main", "mod"):
                parts = parts[:-1]
            out[tuple(parts)] = os.path.join(root, f)
    return out


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def reexports(lib_text, mods):
    """Item name -> module, for lib.rs `pub use a::{X, Y}` lines."""
    out = {}
    for m in re.finditer(r"pub\s+use\s+([a-z_][a-z0-9_]*)::(\{[^}]*\}|[A-Za-z0-9_]+)", lib_text):
        mod, items = m.group(1), m.group(2)
        if (mod,) not in mods:
            continue
        for item in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", items):
            out.setdefault(item, (mod,))
    return out


def resolve(path, mods, items):
    """Longest module prefix of an absolute path, or the re-exporting module."""
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    if path and path[0] in items:
        return items[path[0]]
    return ()  # the crate root


def expand_use(tree):
    """`a::{b, c::d}` -> [[a, b], [a, c, d]] (one level of braces is enough here)."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)::\{(.*)\}$", tree)
    if not m:
        return [tree.split("::")]
    head = m.group(1).split("::")
    out, depth, cur = [], 0, ""
    for ch in m.group(2) + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            if cur:
                for sub in expand_use(cur):
                    out.append(head + sub)
            cur = ""
        else:
            cur += ch
    return out


def deps(mod, text, mods, items, is_root):
    found = set()
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        stmt_start = text.rfind("\n", 0, m.start()) + 1
        line = text[stmt_start:m.start()]
        if is_root and "pub" in line:
            continue
        for p in expand_use(m.group(1)):
            paths.append(p)
    for m in re.finditer(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
        paths.append([m.group(1)] + m.group(2).split("::")[1:])
    for p in paths:
        p = [x for x in p if x and x != "self"]
        if not p:
            continue
        base = list(mod)
        if p[0] == "crate":
            base, p = [], p[1:]
        elif p[0] == "super":
            while p and p[0] == "super":
                base = base[:-1]
                p = p[1:]
        else:
            continue
        target = resolve(base + p, mods, items)
        found.add(target)
    found.discard(mod)
    return found


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def check_crate(crate):
    src = os.path.join(crate, "src")
    mods = modules(src)
    root_file = mods.get(())
    if root_file is None:
        return []
    root_text = strip_comments(open(root_file).read())
    items = reexports(root_text, mods)
    graph = {}
    for mod, f in mods.items():
        text = strip_comments(open(f).read())
        if mod == ():
            text = "\n".join(l for l in text.splitlines() if not re.match(r"\s*(pub(\([a-z]+\))?\s+)?mod\s", l))
        graph[mod] = deps(mod, text, mods, items, mod == ())
    name = lambda m: os.path.relpath(mods[m], crate)
    return [sorted(name(m) for m in comp) for comp in cycles(graph)]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(here)
    crates = sys.argv[1:] or sorted(
        os.path.join(top, "crates", c) for c in os.listdir(os.path.join(top, "crates"))
    )
    bad = 0
    for crate in crates:
        for comp in check_crate(crate):
            bad += 1
            print(f"{os.path.relpath(crate, top)}: files import each other: {' <-> '.join(comp)}")
    if bad:
        sys.exit(1)
    print(f"no import loops between files in {len(crates)} crates")


if __name__ == "__main__":
    main()
