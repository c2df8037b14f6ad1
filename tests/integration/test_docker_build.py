#!/usr/bin/env python3
# hcpipe-test: files-only (checks the repository's files, runs none of its C code under test)
"""What CI proves about docker/Dockerfile without a Docker engine.

No Docker engine runs on CI, so the image is trusted only as far as its steps are the ones CI
runs on the same Debian release. This test checks:

  1. Both stages start FROM debian:12-slim and this machine (where CI runs) is Debian 12, so
     `make deps` resolves the same package names in the image as in CI.
  2. The build stage runs `make deps` and then `make` (the same commands .ci/run uses to install
     and build; .ci/run must itself run `make deps`), after copying the whole repository.
  3. The runtime stage copies build/hcpipe from the build stage, runs as a non-root user, has
     the data dir (HCPIPE_DATA_DIR) as a VOLUME, EXPOSEs the HCPIPE_LISTEN port, has a
     HEALTHCHECK that asks /readyz, and an ENTRYPOINT of `hcpipe serve`.
  4. The runtime packages it installs cover every shared library `ldd $HCPIPE_BIN` needs: each
     library's owning package (dpkg -S) is a listed package, a package a listed one depends on
     (recursively), or a package of priority "required" (what debian:12-slim is made of).
  5. No extra runtime package: each listed one owns a library of the Makefile's pkg-config
     PKGS (what the binary links against), or is one of the two tools the image needs
     (ca-certificates for HTTPS to AWS, curl for the health check).
  6. The build context works: the repository's files minus .dockerignore, copied to a fresh
     folder, build with `make` into a binary that runs (`hcpipe --version`). Not repeated under
     a sanitizer (SANITIZER set), where it would only rebuild the same thing.

Standard library only. Prints "N passed, N failed".
"""
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")
EXTRA_TOOLS = {"ca-certificates", "curl"}
SANITIZER_LIBS = re.compile(r"^lib(asan|ubsan|tsan|lsan|hwasan)\.so")

passed = 0
failed = 0


def report(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("PASS %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def parse_dockerfile(path):
    """Returns a list of stages: {"from": str, "name": str|None, "instrs": [(CMD, args)]}."""
    lines = open(path, encoding="utf-8").read().split("\n")
    logical, cur = [], ""
    for line in lines:
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        logical.append(cur + line)
        cur = ""
    stages = []
    for instr in logical:
        cmd, _, args = instr.strip().partition(" ")
        cmd = cmd.upper()
        args = " ".join(args.split())
        if cmd == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append({"from": words[0], "name": name, "instrs": []})
        elif stages:
            stages[-1]["instrs"].append((cmd, args))
    return stages


def shell_commands(run_args):
    """The simple commands of a RUN line (split on && ; ||)."""
    return [" ".join(c.split()) for c in re.split(r"&&|\|\||;", run_args) if c.strip()]


def apt_install_packages(run_args):
    pkgs = []
    for c in shell_commands(run_args):
        words = shlex.split(c)
        if words[:2] == ["apt-get", "install"]:
            pkgs += [w for w in words[2:] if not w.startswith("-")]
    return pkgs


def exec_form(args):
    import json
    try:
        v = json.loads(args)
        return v if isinstance(v, list) else None
    except ValueError:
        return None


def dpkg_owner(path):
    """The package owning a library path (trying the usrmerge aliases), or None."""
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/lib/"):
            cands.append(p[4:])
        elif p.startswith("/lib/"):
            cands.append("/usr" + p)
    for p in cands:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def installed_depends(pkg, cache):
    """Direct Depends/PreDepends of an installed package (all alternatives that are installed)."""
    if pkg in cache:
        return cache[pkg]
    r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", pkg],
                       capture_output=True, text=True)
    deps = set()
    if r.returncode == 0:
        for alt in r.stdout.split(","):
            for name in alt.split("|"):
                name = name.strip().split(" ")[0].split(":")[0]
                if name:
                    deps.add(name)
    cache[pkg] = deps
    return deps


def closure(pkgs):
    cache, seen, todo = {}, set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(installed_depends(p, cache) - seen)
    return seen


def required_packages():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Priority}\t${Essential}\n"],
                       capture_output=True, text=True, check=True)
    out = set()
    for line in r.stdout.splitlines():
        name, prio, ess = (line.split("\t") + ["", ""])[:3]
        if prio == "required" or ess == "yes":
            out.add(name)
    return out


def makefile_pkgs():
    for line in open(os.path.join(ROOT, "Makefile"), encoding="utf-8"):
        m = re.match(r"^PKGS\s*:=\s*(.*)$", line)
        if m:
            return m.group(1).split()
    return []


def link_lib_packages():
    """Packages owning the shared libraries of `pkg-config --libs $(PKGS)`."""
    pkgs = makefile_pkgs()
    r = subprocess.run(["pkg-config", "--libs"] + pkgs, capture_output=True, text=True)
    if r.returncode != 0:
        return None, "pkg-config --libs failed: " + r.stderr
    dirs = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/lib"]
    r2 = subprocess.run(["cc", "-print-multiarch"], capture_output=True, text=True)
    if r2.returncode == 0 and r2.stdout.strip():
        dirs.insert(0, "/usr/lib/" + r2.stdout.strip())
    owners, missing = {}, []
    for flag in r.stdout.split():
        if flag.startswith("-L"):
            dirs.insert(0, flag[2:])
        if not flag.startswith("-l"):
            continue
        name = flag[2:]
        for d in dirs:
            so = os.path.join(d, "lib%s.so" % name)
            if os.path.exists(so):
                owner = dpkg_owner(os.path.realpath(so))
                if owner:
                    owners[name] = owner
                    break
        else:
            missing.append(name)
    return owners, ("no shared library found for " + " ".join(missing)) if missing else ""


def main():
    stages = parse_dockerfile(DOCKERFILE)
    report("two stages", len(stages) == 2, repr([s["from"] for s in stages]))
    if len(stages) != 2:
        print("%d passed, %d failed" % (passed, failed))
        return 1
    build, runtime = stages

    # 1. Same Debian release as CI.
    report("both stages FROM debian:12-slim",
           build["from"] == "debian:12-slim" and runtime["from"] == "debian:12-slim",
           "%s / %s" % (build["from"], runtime["from"]))
    osrel = open("/etc/os-release", encoding="utf-8").read()
    report("this machine (CI's) is Debian 12 bookworm",
           'ID=debian' in osrel and 'VERSION_ID="12"' in osrel, osrel[:200])

    # 2. The build stage runs CI's commands.
    cmds = []
    copied_all = False
    for cmd, args in build["instrs"]:
        if cmd == "COPY" and args.split()[-2:] == [".", "/src"]:
            copied_all = True
        if cmd == "RUN":
            cmds += shell_commands(args)
    make_cmds = [c for c in cmds if c.split()[0] == "make"]
    report("build stage COPYs the whole repository", copied_all)
    report("build stage runs exactly `make deps` then `make`", make_cmds == ["make deps", "make"],
           repr(make_cmds))
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    # A CI line is a command, or `stage` and a command (.ci/run times each stage that way).
    ci_cmds = [l.split()[1:] if l.split()[:1] == ["stage"] else l.split() for l in ci.splitlines()]
    ci_make = [" ".join(c[:2]) for c in ci_cmds if c[:1] == ["make"]]
    report("CI runs `make deps` too (so CI proves the image's install step)",
           "make deps" in ci_make, repr(ci_make))
    deps_sh = open(os.path.join(ROOT, "tests", "deps.sh"), encoding="utf-8").read()
    mk = open(os.path.join(ROOT, "Makefile"), encoding="utf-8").read()
    report("`make deps` is tests/deps.sh", re.search(r"^deps:\s*\n\tsh tests/deps.sh", mk, re.M)
           is not None)
    # apt-get in deps.sh must work as root without sudo (the build stage has no sudo).
    report("deps.sh needs no sudo as root", 'SUDO=""' in deps_sh and "id -u" in deps_sh)
    # The build stage has Debian's packages but no Node and no pip: each npm call of deps.sh must
    # be guarded by `command -v npm`, each pip call must not stop the script when it fails.
    lines = deps_sh.splitlines()
    unguarded = []
    for i, line in enumerate(lines):
        code = line.split("#", 1)[0]
        if re.search(r"\bnpm\s+(ci|install)\b", code):
            if not any("command -v npm" in l for l in lines[max(0, i - 6):i + 1]):
                unguarded.append(line.strip())
        if re.search(r"\bpip3?\s+install\b", code) and "||" not in code and \
                not (i + 1 < len(lines) and lines[i + 1].lstrip().startswith("||")):
            unguarded.append(line.strip())
    report("deps.sh runs without Node or pip (the image's build stage)", not unguarded,
           repr(unguarded))

    # 3. Runtime stage shape.
    instrs = runtime["instrs"]
    by = {}
    for cmd, args in instrs:
        by.setdefault(cmd, []).append(args)
    copy_bin = [a for a in by.get("COPY", []) if a.startswith("--from=%s " % build["name"])
                and "/src/build/hcpipe" in a]
    report("runtime copies build/hcpipe from the build stage", len(copy_bin) == 1, repr(by.get("COPY")))
    user = by.get("USER", ["root"])[-1]
    report("runs as a non-root user", user.split(":")[0] not in ("root", "0"), user)
    env = " ".join(by.get("ENV", []))
    m = re.search(r"HCPIPE_DATA_DIR=(\S+)", env)
    data_dir = m.group(1) if m else None
    vols = [v for a in by.get("VOLUME", []) for v in (exec_form(a) or a.split())]
    report("data dir is a VOLUME", data_dir is not None and data_dir in vols,
           "%s vs %s" % (data_dir, vols))
    m = re.search(r"HCPIPE_LISTEN=\S*:(\d+)", env)
    port = m.group(1) if m else None
    exposed = [p.split("/")[0] for a in by.get("EXPOSE", []) for p in a.split()]
    report("EXPOSEs the listen port", port is not None and port in exposed, "%s vs %s" % (port, exposed))
    hc = by.get("HEALTHCHECK", [""])[-1]
    hc_ok = "CMD" in hc
    hc_cmd = exec_form(hc.split("CMD", 1)[1].strip()) if hc_ok else None
    script = None
    if hc_cmd:
        for a in by.get("COPY", []):
            parts = a.split()
            if parts[-1] == hc_cmd[0] and not parts[0].startswith("--from"):
                script = os.path.join(ROOT, parts[0])
    hc_text = open(script, encoding="utf-8").read() if script and os.path.exists(script) else hc
    report("HEALTHCHECK asks /readyz", hc_ok and "/readyz" in hc_text, hc)
    ep = exec_form(by.get("ENTRYPOINT", ["null"])[-1]) or []
    report("ENTRYPOINT is `hcpipe serve`",
           len(ep) == 2 and os.path.basename(ep[0]) == "hcpipe" and ep[1] == "serve", repr(ep))
    report("runtime stage does not build (no make, no compiler)",
           not any(re.search(r"\b(make|gcc|cc|clang)\b", a) for a in by.get("RUN", [])))

    # 4./5. Runtime packages vs the binary's libraries.
    listed = []
    for a in by.get("RUN", []):
        listed += apt_install_packages(a)
    binary = os.environ.get("HCPIPE_BIN", os.path.join(ROOT, "build", "hcpipe"))
    if not shutil_which("dpkg") or not shutil_which("ldd"):
        print("dpkg or ldd missing: skipping the library checks")
    elif not os.path.exists(binary):
        report("binary exists", False, binary)
    else:
        r = subprocess.run(["ldd", binary], capture_output=True, text=True)
        libs = []
        for line in r.stdout.splitlines():
            m = re.match(r"\s*(\S+) => (/\S+)", line)
            if m and not SANITIZER_LIBS.match(m.group(1)):
                libs.append(m.group(2))
        report("ldd lists libraries", r.returncode == 0 and len(libs) > 3, r.stdout + r.stderr)
        provided = closure(set(listed) | required_packages())
        uncovered = []
        for lib in libs:
            owner = dpkg_owner(lib)
            if owner is None or owner not in provided:
                uncovered.append("%s (%s)" % (lib, owner))
        report("runtime packages cover every library ldd needs (%d libraries)" % len(libs),
               not uncovered, "; ".join(uncovered))
        owners, why = link_lib_packages()
        report("every library the Makefile links maps to a package", owners is not None and not why, why)
        if owners is not None:
            needed = set(owners.values())
            extra = [p for p in listed if p not in needed and p not in EXTRA_TOOLS]
            missing = sorted(needed - set(listed))
            report("no runtime package beyond the linked libraries and %s"
                   % "/".join(sorted(EXTRA_TOOLS)), not extra, repr(extra))
            report("each linked library's package is listed by name", not missing, repr(missing))
    if os.environ.get("SANITIZER"):
        print("SANITIZER set: the build-context build is not repeated")
    else:
        ok, why = context_build()
        if ok is None:
            print("build context not checked: %s" % why)
        else:
            report("the build context (minus .dockerignore) builds with `make`", ok, why)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def dockerignore_patterns():
    pats = []
    for line in open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line.rstrip("/"))
    return pats


def ignored(rel, pats):
    """Docker's matching, enough for our patterns: a pattern matches the path or a parent;
    '**/' matches any number of leading folders."""
    import fnmatch
    parts = rel.split("/")
    for pat in pats:
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat):
                return True
            if pat.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pat[3:]):
                return True
    return False


def context_build():
    """Copies the build context (tracked files minus .dockerignore) and runs `make` there."""
    import shutil
    import tempfile
    r = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True)
    if r.returncode != 0:
        return None, "not a git checkout"
    files = [f for f in r.stdout.decode().split("\0") if f]
    pats = dockerignore_patterns()
    kept = [f for f in files if not ignored(f, pats)]
    leaked = [f for f in kept if f.startswith(("build/", "var/")) or "node_modules/" in f or
              f.endswith(".env")]
    with tempfile.TemporaryDirectory() as d:
        for f in kept:
            src = os.path.join(ROOT, f)
            if not os.path.isfile(src):
                continue
            dst = os.path.join(d, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
        env = {k: v for k, v in os.environ.items() if k not in ("SANITIZER", "CFLAGS", "LDFLAGS")}
        mk = subprocess.run(["make", "-j2"], cwd=d, env=env, capture_output=True, text=True,
                            timeout=900)
        binary = os.path.join(d, "build", "hcpipe")
        if mk.returncode != 0 or not os.path.exists(binary):
            return False, (mk.stdout + mk.stderr)[-3000:]
        v = subprocess.run([binary, "--version"], capture_output=True, text=True)
        if v.returncode != 0 or not v.stdout.startswith("hcpipe "):
            return False, "hcpipe --version: %d %s" % (v.returncode, v.stdout + v.stderr)
    if leaked:
        return False, "context would include " + " ".join(leaked)
    return True, "%d files" % len(kept)


def shutil_which(name):
    import shutil
    return shutil.which(name)


if __name__ == "__main__":
    sys.exit(main())
