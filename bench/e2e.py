#!/usr/bin/env python3
"""End-to-end throughput of Pictor: uploads the shared photo set many times
through HTTP, concurrently, and measures images per second until every image
is STORED, with each process's peak RSS; then compares that with the pure
imaging throughput of the same photos on the same cores (one
pictor-imaging-bench process per core, side by side: the production imaging
code, one thread each; run before and after the service, and averaged),
giving the service's overhead (HTTP, queue, storage).

    python3 bench/e2e.py --backend sqlite
    python3 bench/e2e.py --backend postgres --workers 2
    python3 bench/e2e.py --storage s3        # originals and assets in a bucket (moto on loopback)

`--count-statements` logs every SQL statement (sqlx at debug) and every
LISTEN wake-up, and prints them per image and process, with the commits
(PostgreSQL: pg_stat_database; SQLite: counted from the writer's log). The
logging costs CPU: its rates are not comparable with a timed run.

Needs release builds: cargo build --release -p pictor -p pictor-imaging -p pictor-bench.
`--uploader rust` (the default) uploads with the `pictor-e2e-upload` bin.
Standard library only. Prints a table row per run and a JSON line last.
"""
import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SET = os.path.join(SHARED, "bench", "imaging", "sets", "photos.txt")


def photos():
    base = os.path.dirname(SET)
    with open(SET) as f:
        return [os.path.normpath(os.path.join(base, line.strip())) for line in f if line.strip()]


def multipart(path, data):
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{os.path.basename(path)}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    return boundary, head + data + f"\r\n--{boundary}--\r\n".encode()


def upload(base, path, data):
    boundary, body = multipart(path, data)
    req = urllib.request.Request(f"{base}/api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["imageId"]


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def process_stat(pid):
    """(command name, user + system CPU seconds) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            head, rest = f.read().rsplit(")", 1)
        fields = rest.split()
        return head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children_of(pid):
    """Live child processes of `pid` (a `serve`'s or `worker`'s image
    sandbox children)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return kids


def cpu_seconds(pid):
    """User + system CPU time of a live process and of its live children
    (the image sandbox's, which do the imaging when it is on)."""
    stat = process_stat(pid)
    own = stat[1] if stat else float("nan")
    return own + sum(s[1] for s in map(process_stat, children_of(pid)) if s)


def postgres_cpu_seconds():
    """User + system CPU time of every live PostgreSQL process (the server
    works for the service too, outside its processes)."""
    stats = (process_stat(pid) for pid in os.listdir("/proc") if pid.isdigit())
    return sum(cpu for name, cpu in filter(None, stats) if name == "postgres")


def database_backends(pg_base, url):
    """Pids of the PostgreSQL backends connected to the run's database."""
    db = url.rsplit("/", 1)[1]
    out = subprocess.run(["psql", f"{pg_base}/postgres", "-Atc",
                          f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}'"],
                         check=True, capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def last_stored_at(base, count):
    """When the last image became STORED (epoch seconds), from the images'
    `updatedAt`: the moment itself, not when a poll noticed it."""
    latest = 0.0
    for offset in range(0, count, 1000):
        page = get_json(f"{base}/api/images?status=STORED&limit=1000&offset={offset}")
        for image in page["data"]:
            latest = max(latest, datetime.datetime.fromisoformat(image["updatedAt"]).timestamp())
    return latest


def machine_counters():
    """(busy CPU seconds of the whole machine, context switches) from
    /proc/stat: every process's and kernel thread's time but idle and I/O
    wait, so the kernel's I/O work and the load generator count too."""
    busy, switches = float("nan"), float("nan")
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] == "cpu":
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
                busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
            elif fields[0] == "ctxt":
                switches = int(fields[1])
    return busy, switches


def log_lines(path):
    with open(path) as f:
        return sum(1 for _ in f)


def count_log(path, skip):
    """Statements (by their first words), claims that returned nothing,
    commits (COMMITs, and the statements that are their own transaction
    here: claims and lease renewals; sqlx does not log BEGIN) and LISTEN
    wake-ups in a process's log, after its first `skip` lines.
    The log runs until the process is stopped, so the count includes what
    follows the last STORED (lease renewals, idle polls)."""
    import re
    stats = {"statements": {}, "wake-ups": 0, "claims returning nothing": 0, "commits (log)": 0}
    with open(path) as f:
        for n, line in enumerate(f):
            if n < skip:
                continue
            if "woken by a job notice" in line:
                stats["wake-ups"] += 1
                continue
            m = re.search(r'sqlx::query.*?summary="([^"]*)"', line)
            if not m:
                continue
            summary = m.group(1).replace(" …", "")
            words = summary.split()
            key = " ".join(words[:6])
            if "attempts = attempts + 1" in line:
                key = "claim"
                if re.search(r"rows_returned=0\b", line):
                    stats["claims returning nothing"] += 1
            elif "locked_until = NULL, finished_at" in line:
                key = "complete (one or many)"
            stats["statements"][key] = stats["statements"].get(key, 0) + 1
            if key in ("COMMIT", "claim") or summary.startswith("UPDATE job SET locked_until"):
                stats["commits (log)"] += 1
    return stats


def pg_commits(pg_base, url):
    db = url.rsplit("/", 1)[1]
    out = subprocess.run(["psql", f"{pg_base}/postgres", "-Atc",
                          f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def print_counts(counts, images):
    print(f"statements per image ({images} images), by process:")
    total = 0
    for name, stats in counts.items():
        if not isinstance(stats, dict):
            continue
        n = sum(stats["statements"].values())
        total += n
        ends = sum(c for k, c in stats["statements"].items() if k in ("COMMIT", "ROLLBACK"))
        print(f"  {name}: {n / images:.2f} statements (+{ends / images:.2f} BEGINs, not logged), "
              f"{stats['wake-ups'] / images:.2f} wake-ups, "
              f"{stats['claims returning nothing']} claims returning nothing, "
              f"{stats['commits (log)'] / images:.2f} commits counted in the log")
        for key, c in sorted(stats["statements"].items(), key=lambda kv: -kv[1]):
            print(f"    {c / images:6.2f}  {key}")
    print(f"  all processes: {total / images:.2f} statements per image")
    if "postgres commits" in counts:
        print(f"  postgres: {counts['postgres commits'] / images:.2f} commits per image (pg_stat_database xact_commit)")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(program, work):
    """moto's S3 server on a free loopback port with an empty bucket; returns
    (process, endpoint). moto keeps objects in memory, in Python: its CPU is
    reported apart from Pictor's, as a real object store's would be."""
    port = free_port()
    proc = subprocess.Popen([program, "-H", "127.0.0.1", "-p", str(port)], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/pictor-e2e", method="PUT"), timeout=5).close()
            return proc, endpoint
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit(f"{program} did not start")
            time.sleep(0.2)


def start(binary, args, env, cwd, log):
    return subprocess.Popen([binary, *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)


def wait_address(log_path, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(log_path) as f:
            for line in f:
                if "address=" in line:
                    return line.split("address=")[1].split()[0]
        time.sleep(0.1)
    raise SystemExit(f"no address in {log_path}")


def imaging_baseline(bench, files, cores, copies, work_dir):
    """What the imaging code alone reaches on `cores` cores: `cores` processes
    of pictor-imaging-bench side by side, each rendering the set `copies`
    times (the same images as the service run). Returns images per second
    by the wall clock, and the CPU seconds of one pass over the set."""
    out = tempfile.mkdtemp(prefix="pictor-e2e-imaging-", dir=work_dir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    procs = [subprocess.Popen([bench, os.path.join(out, str(i)), *(files * copies)], stdout=subprocess.DEVNULL)
             for i in range(cores)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{bench} failed")
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(out, ignore_errors=True)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    images = len(files) * copies * cores
    return images / wall, cpu / (copies * cores)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--workers", type=int, default=0, help="0: `serve` runs the jobs; N: `serve --no-runner` + N workers")
    ap.add_argument("--copies", type=int, default=5, help="how many times the photo set is uploaded")
    ap.add_argument("--concurrency", type=int, default=8, help="uploads in flight")
    ap.add_argument("--poll-seconds", type=float, default=0.25,
                    help="how often the script asks whether every image is STORED (two GETs each time)")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")))
    ap.add_argument("--uploader", choices=["python", "rust"], default="rust",
                    help="load generator: target/release/pictor-e2e-upload (less CPU) or this script's threads")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment of the Pictor processes (repeatable), e.g. PICTOR_RUNNER_CONCURRENCY=2")
    ap.add_argument("--timeline", action="store_true",
                    help="also print the STORED count at each poll (seconds since the first upload)")
    ap.add_argument("--storage", choices=["disk", "s3"], default="disk",
                    help="s3: STORAGE_URL=s3://pictor-e2e/site on a moto server started on loopback")
    ap.add_argument("--moto", default=os.environ.get("PICTOR_TEST_MOTO", "/var/tmp/pictor-venv/bin/moto_server"),
                    help="moto_server program for --storage s3 (.ci/venv installs it)")
    ap.add_argument("--pg-base", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--work-dir", default=None,
                    help="where the data folder and the imaging outputs go (default: the system temp folder)")
    ap.add_argument("--count-statements", action="store_true",
                    help="log and count every statement, commit and wake-up per image (not a timed run)")
    a = ap.parse_args()
    pictor = os.path.join(a.target_dir, "release", "pictor")
    bench = os.path.join(a.target_dir, "release", "pictor-imaging-bench")
    uploader = os.path.join(a.target_dir, "release", "pictor-e2e-upload")
    for b in (pictor, bench) + ((uploader,) if a.uploader == "rust" else ()):
        if not os.path.exists(b):
            raise SystemExit(f"missing {b}: cargo build --release -p pictor -p pictor-imaging -p pictor-bench")
    files = photos()
    blobs = [(p, open(p, "rb").read()) for p in files]
    cores = os.cpu_count() or 1

    # The imaging alone runs before and after the service (the mean is the
    # reference): on a shared machine its rate drifts by ±10 % over minutes.
    baseline_copies = max(1, a.copies // cores)
    before = imaging_baseline(bench, files, cores, baseline_copies, a.work_dir)
    work = tempfile.mkdtemp(prefix="pictor-e2e-", dir=a.work_dir)
    if a.backend == "sqlite":
        url = f"sqlite://{work}/pictor.db"
    else:
        db = "pictor_e2e_" + uuid.uuid4().hex[:12]
        subprocess.run(["psql", f"{a.pg_base}/postgres", "-qc", f"CREATE DATABASE {db}"], check=True)
        url = f"{a.pg_base}/{db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICTOR_")}
    env.update(DATABASE_URL=url, STORAGE_DIR=os.path.join(work, "storage"), RUST_LOG="warn,pictor=info",
               PICTOR_RUNNER_POLL_INTERVAL_MS="1000")
    procs, services = [], []
    if a.storage == "s3":
        moto, endpoint = start_moto(a.moto, work)
        services.append(("moto", moto))
        env.update(STORAGE_URL="s3://pictor-e2e/site", AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true",
                   AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="e2e", AWS_SECRET_ACCESS_KEY="e2e",
                   PICTOR_SCRATCH_DIR=os.path.join(work, "scratch"))
    if a.count_statements:
        env["RUST_LOG"] = "warn,pictor=info,sqlx::query=debug,pictor::queue::wakeup=debug"
    env.update(kv.split("=", 1) for kv in a.env)
    logs, counts = {}, None
    try:
        subprocess.run([pictor, "migrate"], env=env, cwd=work, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL if a.count_statements else None)
        api_log = os.path.join(work, "api.log")
        api_args = ["serve", "--bind", "127.0.0.1:0"] + (["--no-runner"] if a.workers else [])
        procs.append(("api" if a.workers else "serve", start(pictor, api_args, env, work, open(api_log, "w"))))
        logs["api" if a.workers else "serve"] = api_log
        for i in range(a.workers):
            logs[f"worker{i + 1}"] = os.path.join(work, f"w{i}.log")
            procs.append((f"worker{i + 1}", start(pictor, ["worker"], env, work, open(logs[f"worker{i + 1}"], "w"))))
        base = "http://" + wait_address(api_log)
        jobs = [blobs[i % len(blobs)] for i in range(len(blobs) * a.copies)]

        from concurrent.futures import ThreadPoolExecutor
        if a.count_statements:
            time.sleep(1)  # start-up statements (migrations check, listeners) before the mark
            marks = {name: log_lines(path) for name, path in logs.items()}
            commits0 = pg_commits(a.pg_base, url) if a.backend == "postgres" else None
        cpu0 = {name: cpu_seconds(p.pid) for name, p in procs + services}
        pg0 = postgres_cpu_seconds()
        postgres_own = None
        backends0 = {}
        if a.backend == "postgres":
            for pid in database_backends(a.pg_base, url):
                stat = process_stat(pid)
                if stat:
                    backends0[pid] = stat[1]
        machine0 = machine_counters()
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0, t0_epoch = time.monotonic(), time.time()
        if a.uploader == "rust":
            out = subprocess.run([uploader, base, str(a.concurrency), str(a.copies), *files],
                                 check=True, capture_output=True, text=True).stdout
            ids = range(int(out.strip()))
        else:
            with ThreadPoolExecutor(a.concurrency) as pool:
                ids = list(pool.map(lambda pb: upload(base, *pb), jobs))
        t_uploaded = time.monotonic() - t0
        timeline = []
        while True:
            page = get_json(f"{base}/api/images?status=STORED&limit=1")
            failed = get_json(f"{base}/api/images?status=FAILED&limit=1")["count"]
            timeline.append((round(time.monotonic() - t0, 2), page["count"]))
            if page["count"] + failed >= len(ids):
                break
            time.sleep(a.poll_seconds)
        noticed = time.monotonic() - t0
        machine1 = machine_counters()
        # The rate's clock stops when the last image was STORED; the poll
        # notices up to --poll-seconds later.
        elapsed = last_stored_at(base, page["count"]) - t0_epoch if not failed else noticed
        rss = {name: round(peak_rss_mb(p.pid), 1) for name, p in procs + services}
        # The image sandbox's children, each its own peak (they run side by side).
        rss.update({f"{name} children": [round(peak_rss_mb(k), 1) for k in children_of(p.pid)]
                    for name, p in procs if children_of(p.pid)})
        cpu = {name: round(cpu_seconds(p.pid) - cpu0[name], 2) for name, p in procs}
        # The object store's CPU, apart: moto is a Python stand-in for a real store.
        store_cpu = {name: round(cpu_seconds(p.pid) - cpu0[name], 2) for name, p in services}
        if a.backend == "postgres":
            cpu["postgres"] = round(postgres_cpu_seconds() - pg0, 2)
            # Of which this run's own connections (the rest: the server's
            # background processes, and any other user of a shared server).
            own = 0.0
            for pid in database_backends(a.pg_base, url):
                stat = process_stat(pid)
                if stat:
                    own += stat[1] - backends0.get(pid, 0.0)
            postgres_own = round(own, 2)
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The uploader's CPU (this script's threads, or the Rust uploader) and the status polling's.
        client_cpu = sum(getattr(b, f) - getattr(a_, f) for a_, b in ((self0, self1), (children0, children1))
                         for f in ("ru_utime", "ru_stime"))
        if a.count_statements:
            counts = {name: count_log(path, marks[name]) for name, path in logs.items()}
    finally:
        for _, p in procs + services:
            p.terminate()
        for _, p in procs + services:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        if counts is not None and a.backend == "postgres":
            time.sleep(1)  # the backends report their counts as they exit
            counts["postgres commits"] = pg_commits(a.pg_base, url) - commits0
        if a.backend == "postgres":
            subprocess.run(["psql", f"{a.pg_base}/postgres", "-qc", f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)"])
        shutil.rmtree(work, ignore_errors=True)

    after = imaging_baseline(bench, files, cores, baseline_copies, a.work_dir)
    ideal, set_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    rate = len(ids) / elapsed
    # CPU view, insensitive to other load on a shared machine: the service's
    # CPU seconds per image against the imaging code's alone.
    imaging_cpu = set_cpu / len(files) * len(ids)
    service_cpu = sum(cpu.values())
    result = {
        "backend": a.backend, "storage": a.storage, "workers": a.workers, "uploader": a.uploader, "images": len(ids), "failed": failed,
        "upload_seconds": round(t_uploaded, 2), "stored_seconds": round(elapsed, 2),
        "noticed_seconds": round(noticed, 2),
        "images_per_second": round(rate, 2), "imaging_only_images_per_second": round(ideal, 2),
        "imaging_only_before_after": [round(before[0], 2), round(after[0], 2)],
        "overhead_percent": round((1 - rate / ideal) * 100, 1), "peak_rss_mb": rss,
        "cpu_seconds": cpu, "store_cpu_seconds": store_cpu, "postgres_own_backends_cpu_seconds": postgres_own,
        "pictor_cpu_seconds_per_image": round(sum(v for k, v in cpu.items() if k != "postgres") / len(ids), 4),
        "imaging_cpu_seconds": round(imaging_cpu, 2), "client_cpu_seconds": round(client_cpu, 2),
        "cpu_overhead_percent": round((1 - imaging_cpu / service_cpu) * 100, 1),
        "machine_cpu_seconds": round(machine1[0] - machine0[0], 2),
        "machine_cpu_overhead_percent": round((1 - imaging_cpu / (machine1[0] - machine0[0])) * 100, 1),
        "context_switches_per_image": round((machine1[1] - machine0[1]) / len(ids)),
        "load_average": os.getloadavg()[0], "cores": cores,
    }
    print(f"{a.backend:8} storage={a.storage} workers={a.workers} uploader={a.uploader} images={len(ids)} stored in {elapsed:.1f} s -> {rate:.2f} img/s; "
          f"imaging alone {ideal:.2f} img/s ({before[0]:.2f} before, {after[0]:.2f} after; {cores} processes "
          f"side by side; CPU {set_cpu:.2f} s per set); "
          f"overhead {result['overhead_percent']} %; peak RSS {rss}; CPU s {cpu} vs imaging {imaging_cpu:.1f} "
          f"(CPU overhead {result['cpu_overhead_percent']} %), store CPU s {store_cpu}, uploader {client_cpu:.1f}; whole machine "
          f"{result['machine_cpu_seconds']} CPU s (overhead {result['machine_cpu_overhead_percent']} %), "
          f"{result['context_switches_per_image']} context switches per image")
    if counts is not None:
        print_counts(counts, len(ids))
    if a.timeline:
        print("timeline (s, STORED):", " ".join(f"{t}:{n}" for t, n in timeline))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
