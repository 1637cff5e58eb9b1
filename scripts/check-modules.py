#!/usr/bin/env python3
"""Checks the library's module structure (run by .ci/run):

- no module cycle: no module uses another that uses it back, directly or
  through others (a parent's `mod`/`pub use` of its children counts as a
  use, so children must not use their parent's items either);
- src/client uses nothing of the server or the store, and src/server
  nothing of the client or cli.

A module is one file of src/ (the binaries are not part of the library).
Every `crate::...` and `super::...` path in code (comments aside) is
resolved to the deepest module file it names. Paths inside generated code
(`include!`d from OUT_DIR) are not seen: build.rs gives them, and they name
only `crate::contract::messages` and `crate::contract::list`.
"""
import re
import sys
from pathlib import Path

src = Path(__file__).resolve().parent.parent / "src"


def module_of(path):
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


files = {module_of(p): p for p in src.rglob("*.rs") if "bin" not in p.relative_to(src).parts}
path_re = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
group_re = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^{}]*)\}")


def resolve(module, is_facade, head, rest):
    if head == "crate":
        base = []
    elif head == "self":
        base = list(module)
    else:  # super: a facade's `super` is its parent, a file's its folder's parent
        base = list(module)[:-1]
    names = [n for n in rest.split("::") if n]
    while names and names[0] == "super":
        base = base[:-1]
        names.pop(0)
    target = tuple(base)
    for name in names:
        if target + (name,) in files:
            target = target + (name,)
        else:
            break
    return target


edges = {m: set() for m in files}
for module, path in files.items():
    facade = path.name in ("mod.rs", "lib.rs")
    code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
    # A `use a::{b, c::d}` group names a::b and a::c::d.
    for head, prefix, group in group_re.findall(code):
        for item in group.split(","):
            item = item.strip().split(" as ")[0]
            if item and item != "self":
                target = resolve(module, facade, head, prefix + "::" + item)
                edges[module].add(target)
    for head, rest in path_re.findall(code):
        edges[module].add(resolve(module, facade, head, rest))
    for child in re.findall(r"^\s*(?:pub(?:\([a-z]+\))? )?mod ([a-z_]+);", code, re.M):
        edges[module].add(module + (child,))
    edges[module].discard(module)

errors = []
# Cycles: Tarjan's strongly connected components.
index, low, stack, on_stack, counter = {}, {}, [], set(), [0]


def strongconnect(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in edges.get(v, ()):
        if w not in files:
            continue
        if w not in index:
            strongconnect(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            names = sorted("::".join(m) or "crate" for m in component)
            errors.append("module cycle: " + ", ".join(names))


sys.setrecursionlimit(10000)
for v in files:
    if v not in index:
        strongconnect(v)

forbidden = {"client": ("server", "store", "domain"), "server": ("client", "cli")}
for module, targets in edges.items():
    if not module or module[0] not in forbidden:
        continue
    for target in targets:
        if target and target[0] in forbidden[module[0]]:
            errors.append(f"{'::'.join(module)} uses {'::'.join(target)}")

for error in errors:
    print(error)
if errors:
    sys.exit(1)
print(f"{len(files)} modules, no cycle; client and server independent")
