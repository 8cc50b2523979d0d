#!/usr/bin/env python3
"""Block-volume benchmark (docs/block.md, docs/benchmarks.md "Block volumes").

1. A 2 GiB sparse ext4 image made with `mkfs.ext4 -d` from real files
   (the first CONTENT_MIB MiB of /usr/lib then /usr/share, in sorted order).
2. Full backups, each into a fresh repository, RUNS times:
   `lifeboat backup --block` with fixed:4MiB, fixed:1MiB and cdc chunks, and
   `restic backup --stdin` of the same image, in the same run.
3. In-place churn: random 4-64 KiB writes at random 4 KiB-aligned offsets
   inside blocks the file system uses (a database rewriting pages), plus a
   new 32 MiB file written with debugfs. The changed 4 KiB blocks are found
   by comparing with a copy made before, as GetMetadataDelta would report
   them. Then the incremental of each chunking: a full re-read against the
   parent (cdc, fixed) and --changed-ranges (fixed).

Usage: scripts/bench-block.py LIFEBOAT_BIN WORKDIR [CONTENT_MIB] [RUNS]
Prints one line per measurement; wall seconds and peak RSS from
/usr/bin/time, bytes from the --json summaries.
"""
import json, os, random, shutil, statistics, subprocess, sys, time

LB = os.path.realpath(sys.argv[1])
W = sys.argv[2]
CONTENT_MIB = int(sys.argv[3]) if len(sys.argv) > 3 else 400
RUNS = int(sys.argv[4]) if len(sys.argv) > 4 else 3
MIB = 1 << 20
ENV = dict(os.environ, LIFEBOAT_PASSWORD="bench", RESTIC_PASSWORD="bench",
           XDG_CACHE_HOME=os.path.join(os.path.abspath(W), "cache"))
os.makedirs(W, exist_ok=True)
os.chdir(W)


def sh(*args, stdin=None):
    return subprocess.run(args, check=True, capture_output=True, env=ENV, stdin=stdin)


def timed(args, stdin_path=None, cache="cache"):
    """Run under /usr/bin/time; returns (seconds, max RSS KiB, stdout).
    Seconds are measured here with a monotonic clock: GNU time's %e came
    out in steps of 0.1 s on the benchmark VM. Dirty pages are written out first, so neither tool's fsyncs wait on
    writeback of what ran before it (up to 2x on a busy disk)."""
    os.sync()
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    env = dict(ENV, XDG_CACHE_HOME=os.path.abspath(cache))
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M"] + args, stdin=stdin,
                       capture_output=True, env=env)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"{args} failed: {p.stderr.decode()}")
    line = [l for l in p.stderr.decode().splitlines() if l.startswith("TIME ")][-1]
    _, _, rss = line.split()
    return round(wall, 3), int(rss), p.stdout.decode()


def summary(out):
    return [json.loads(l) for l in out.splitlines() if '"summary"' in l][-1]


def du(path):
    return int(sh("du", "-sb", path).stdout.split()[0])


def lb_init(repo):
    shutil.rmtree(repo, ignore_errors=True)
    sh(LB, "-r", repo, "init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1")


def restic_init(repo):
    shutil.rmtree(repo, ignore_errors=True)
    sh("restic", "-r", repo, "init")


def make_image():
    shutil.rmtree("src", ignore_errors=True)
    used, budget = 0, CONTENT_MIB * MIB
    for root in ["/usr/lib", "/usr/share"]:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                n = os.path.getsize(p)
                if used + n > budget:
                    continue
                dst = "src" + p
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                try:
                    shutil.copyfile(p, dst)
                    used += n
                except OSError:
                    pass
    if os.path.exists("img.img"):
        os.remove("img.img")
    with open("img.img", "wb") as f:
        f.truncate(2 << 30)
    sh("mkfs.ext4", "-q", "-F", "-d", "src", "img.img")
    shutil.rmtree("src")
    st = os.stat("img.img")
    print(f"image: 2 GiB, {used} bytes of real files, {st.st_blocks * 512} bytes allocated")


def data_extents(path):
    """Allocated extents of the image file (SEEK_DATA/SEEK_HOLE)."""
    out, fd = [], os.open(path, os.O_RDONLY)
    size, pos = os.fstat(fd).st_size, 0
    while pos < size:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        pos = h
    os.close(fd)
    return out


def churn(seed=1):
    """In-place writes into used blocks, and one new file."""
    rng = random.Random(seed)
    ext = [e for e in data_extents("img.img") if e[1] - e[0] >= 256 << 10]
    # Leave the first 64 MiB (superblock, group descriptors, inode tables)
    # alone so that the file system stays consistent.
    ext = [(max(a, 64 * MIB), b) for a, b in ext if b > 64 * MIB + (256 << 10)]
    total = 0
    with open("img.img", "r+b") as f:
        for _ in range(300):
            a, b = rng.choice(ext)
            n = rng.choice([4, 8, 16, 64]) << 10
            off = rng.randrange(a, max(a + 1, b - n)) // 4096 * 4096
            f.seek(off)
            f.write(rng.randbytes(n))
            total += n
    with open("new.bin", "wb") as f:
        f.write(random.Random(seed + 1).randbytes(32 * MIB))
    sh("debugfs", "-w", "-R", "write new.bin new.bin", "img.img")
    os.remove("new.bin")
    print(f"churn: 300 in-place writes ({total} bytes) and a new 32 MiB file")


def changed_ranges(old, new, out):
    ranges = []
    with open(old, "rb") as a, open(new, "rb") as b:
        pos = 0
        while True:
            bb = b.read(4 * MIB)
            if not bb:
                break
            ba = a.read(len(bb)).ljust(len(bb), b"\0")
            for k in range(0, len(bb), 4096):
                if ba[k:k + 4096] != bb[k:k + 4096]:
                    off, ln = pos + k, min(4096, len(bb) - k)
                    if ranges and ranges[-1][0] + ranges[-1][1] == off:
                        ranges[-1][1] += ln
                    else:
                        ranges.append([off, ln])
            pos += len(bb)
    with open(out, "w") as f:
        json.dump([{"byte_offset": o, "size_bytes": l} for o, l in ranges], f)
    return len(ranges), sum(l for _, l in ranges)


def main():
    make_image()
    chunkings = ["fixed:4MiB", "fixed:1MiB", "cdc"]
    print(f"\n== full backup of the 2 GiB sparse image, {RUNS} runs each, fresh repository each run")
    results = {}
    for run in range(RUNS):
        for c in chunkings:
            repo = "repo-" + c.replace(":", "-")
            lb_init(repo)
            secs, rss, out = timed([LB, "-r", repo, "--json", "backup", "--block", "img.img",
                                    "--chunker", c])
            s = summary(out)
            results.setdefault("lifeboat --block " + c, []).append(
                (secs, rss, s["bytes_read"], s["bytes_added"], du(repo)))
        restic_init("restic-repo")
        secs, rss, out = timed(["restic", "-r", "restic-repo", "backup", "--stdin",
                                "--stdin-filename", "img.img", "--json", "-q"], "img.img")
        results.setdefault("restic backup --stdin", []).append(
            (secs, rss, 2 << 30, None, du("restic-repo")))
    for name, rs in results.items():
        secs = [r[0] for r in rs]
        print(f"{name:32s} wall s: median {statistics.median(secs):.2f} "
              f"(runs {', '.join(f'{x:.2f}' for x in secs)}); max RSS {max(r[1] for r in rs) // 1024} MiB; "
              f"read {rs[-1][2]}; repo {rs[-1][4]} bytes")

    print("\n== in-place churn, then incrementals (parents: the last full backups above)")
    shutil.copyfile("img.img", "before.img")  # a plain copy is fine: compared, not backed up
    churn()
    n, changed = changed_ranges("before.img", "img.img", "delta.json")
    os.remove("before.img")
    print(f"changed: {n} ranges, {changed} bytes (4 KiB blocks)")
    for c in chunkings:
        repo = "repo-" + c.replace(":", "-")
        shutil.rmtree(repo + "-ranges", ignore_errors=True)
        shutil.copytree(repo, repo + "-ranges")
        before = du(repo)
        secs, rss, out = timed([LB, "-r", repo, "--json", "backup", "--block", "img.img",
                                "--chunker", c])
        s = summary(out)
        print(f"re-read   {c:10s}: {secs:.2f} s, read {s['bytes_read']}, added {s['bytes_added']}, "
              f"stored {s['bytes_stored']}, repo grew {du(repo) - before} bytes")
        if c.startswith("fixed"):
            # On a copy of the repository as it was before the re-read.
            repo = repo + "-ranges"
            before = du(repo)
            secs, rss, out = timed([LB, "-r", repo, "--json", "backup", "--block", "img.img",
                                    "--chunker", c, "--changed-ranges", "delta.json"],
                                   cache="cache-ranges")
            s = summary(out)
            print(f"changed   {c:10s}: {secs:.2f} s, read {s['bytes_read']}, added {s['bytes_added']}, "
                  f"stored {s['bytes_stored']}, repo grew {du(repo) - before} bytes")
    before = du("restic-repo")
    secs, rss, out = timed(["restic", "-r", "restic-repo", "backup", "--stdin",
                            "--stdin-filename", "img.img", "-q"], "img.img")
    print(f"restic --stdin incremental: {secs:.2f} s, repo grew {du('restic-repo') - before} bytes")

    target = "restored.img"
    if os.path.exists(target):
        os.remove(target)
    secs, rss, _ = timed([LB, "-r", "repo-fixed-1MiB", "--json", "restore", "--block", "latest",
                          "--target", target])
    same = subprocess.run(["cmp", "img.img", target]).returncode == 0
    print(f"\nrestore --block fixed:1MiB: {secs:.2f} s, {os.stat(target).st_blocks * 512} bytes allocated, "
          f"identical: {same}")
    os.remove(target)


main()
