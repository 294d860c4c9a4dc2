#!/usr/bin/env python3
"""The `crate::` import graph of a crate's src/, without comments and test modules, and its
strongly connected components (import circles)."""
import re, sys, os
root = sys.argv[1] if len(sys.argv) > 1 else "crates/server/src"
mods = {}
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith(".rs"): continue
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, root)[:-3]
        name = rel.replace("/mod", "").replace("/", "::")
        if name == "lib": continue
        mods[name] = p
top = {m.split("::")[0] for m in mods}
graph = {}
for m, p in mods.items():
    src = open(p).read()
    k = src.find("#[cfg(test)]\nmod tests")
    if k >= 0: src = src[:k]
    src = "\n".join(l for l in src.split("\n") if not l.strip().startswith("//"))
    deps = set()
    for g in re.finditer(r"crate::\{([^}]*)\}", src):
        for part in g.group(1).split(","):
            w = part.strip().split("::")[0].strip()
            if w in top: deps.add(w)
    for g in re.finditer(r"crate::(\w+)", src):
        if g.group(1) in top: deps.add(g.group(1))
    me = m.split("::")[0]
    graph.setdefault(me, set()).update(d for d in deps if d != me)
# Tarjan
idx, low, st, on, out, n = {}, {}, [], set(), [], [0]
def sc(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in graph.get(v, ()):
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v: break
        out.append(sorted(c))
for v in sorted(graph): 
    if v not in idx: sc(v)
for m in sorted(graph): print(f"{m:10} -> {', '.join(sorted(graph[m]))}")
cyc = [c for c in out if len(c) > 1]
print("circles:", cyc if cyc else "none")
sys.exit(1 if cyc else 0)
