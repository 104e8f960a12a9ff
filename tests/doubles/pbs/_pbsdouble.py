#!/usr/bin/env python3
"""CONTRACT DOUBLE of OpenPBS's qsub/qstat/qdel/pbsdsh -- not PBS.

Implements only the subset merlin uses, backed by the real local Slurm for
queueing and execution. Output formats follow the OpenPBS man pages
(qsub.1B: prints SEQ.SERVER; qstat.1B: ``-f -F json`` gives
{"timestamp", "pbs_version", "pbs_server", "Jobs": {id: {...}}}, finished jobs
only with ``-x``; pbsdsh.1B: ``-n INDEX -- cmd``). Job environment as
documented: PBS_JOBID, PBS_JOBNAME, PBS_NODEFILE (one line per chunk),
PBS_O_WORKDIR, PBS_QUEUE, PBS_ENVIRONMENT, NCPUS, TMPDIR.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

SERVER = "merlin-double"
VERSION = "merlin-contract-double (OpenPBS 20.0 format)"
#: Slurm pending reason -> a PBS-style comment (what a PBS scheduler would say)
REASONS = {
    "PartitionConfig": "Can Never Run: Insufficient amount of server resource: nodect (R: {n} A: 2 T: 2)",
    "Resources": "Not Running: Insufficient amount of resource: ncpus",
    "Priority": "Not Running: Job would conflict with reservation or top job",
    "JobHeldUser": "Job held by user",
}
STATE = {"PENDING": "Q", "RUNNING": "R", "COMPLETING": "E", "SUSPENDED": "S"}


def die(msg: str, code: int = 1) -> None:
    print(msg, file=sys.stderr)
    sys.exit(code)


def slurm_id(pbs_id: str) -> str:
    return pbs_id.split(".")[0]


def qsub(argv: list[str]) -> None:
    if not argv:
        die("usage: qsub script", 2)
    script = Path(argv[-1]).resolve()
    directives: dict[str, str] = {}
    select = "1"
    for line in script.read_text().splitlines():
        m = re.match(r"^#PBS\s+(-\w)\s*(.*)$", line)
        if not m:
            continue
        flag, value = m.group(1), m.group(2).strip()
        if flag == "-l":
            key, _, val = value.partition("=")
            if key == "select":
                select = val
            directives[key] = val
        else:
            directives[flag] = value
    chunks = int(select.split(":")[0]) if select.split(":")[0].isdigit() else 1
    sb = ["sbatch", "--parsable", f"--nodes={chunks}", "--ntasks-per-node=1", f"--job-name={directives.get('-N', script.name)}"]
    if "walltime" in directives:
        h, m, s = ([0, 0, 0] + [int(x) for x in directives["walltime"].split(":")])[-3:]
        sb.append(f"--time={max(1, h * 60 + m + (1 if s else 0))}")
    if "-o" in directives:
        sb.append(f"--output={directives['-o']}")
    wrapper = script.with_suffix(".pbs-double.sh")
    wrapper.write_text(
        "#!/bin/bash\n"
        f"export PBS_JOBID=\"$SLURM_JOB_ID.{SERVER}\" PBS_JOBNAME={json.dumps(directives.get('-N', script.name))}\n"
        f"export PBS_O_WORKDIR={json.dumps(os.getcwd())} PBS_QUEUE=workq PBS_ENVIRONMENT=PBS_BATCH\n"
        'export NCPUS="${SLURM_CPUS_ON_NODE:-1}" TMPDIR="${TMPDIR:-/tmp}"\n'
        'export PBS_NODEFILE="$(mktemp /tmp/pbs-nodefile.XXXXXX)"\n'
        'scontrol show hostnames "$SLURM_JOB_NODELIST" > "$PBS_NODEFILE"\n'
        f"exec bash {json.dumps(str(script))}\n"
    )
    res = subprocess.run(sb + [str(wrapper)], capture_output=True, text=True)
    if res.returncode != 0:
        die(f"qsub: {res.stderr.strip()}", res.returncode)
    print(f"{res.stdout.strip().split(';')[0]}.{SERVER}")


def _job(pbs_id: str) -> dict | None:
    res = subprocess.run(["scontrol", "show", "job", "-o", slurm_id(pbs_id)], capture_output=True, text=True)
    if res.returncode != 0 or not res.stdout.strip():
        return None
    kv = dict(w.split("=", 1) for w in res.stdout.split() if "=" in w)
    state, reason = kv.get("JobState", "UNKNOWN"), kv.get("Reason", "None")
    hosts = subprocess.run(["scontrol", "show", "hostnames", kv.get("NodeList", "")], capture_output=True, text=True).stdout.split() if kv.get("NodeList") not in (None, "(null)") else []
    job: dict = {
        "Job_Name": kv.get("JobName", ""),
        "Job_Owner": f"{kv.get('UserId', 'root').split('(')[0]}@{SERVER}",
        "job_state": STATE.get(state, "F"),
        "queue": "workq",
        "server": SERVER,
        "Resource_List": {"nodect": int(kv.get("NumNodes", "1").split("-")[0]), "place": "scatter", "walltime": _hms(kv.get("TimeLimit", ""))},
    }
    if hosts:
        job["exec_host"] = "+".join(f"{h}/0" for h in hosts)
    if state == "PENDING":
        job["comment"] = REASONS.get(reason, f"Not Running: {reason}").format(n=job["Resource_List"]["nodect"])
    if kv.get("StartTime") not in (None, "Unknown", "None") and state != "PENDING":
        job["stime"] = datetime.fromisoformat(kv["StartTime"]).strftime("%a %b %d %H:%M:%S %Y")
    if job["job_state"] == "F":
        code = {"CANCELLED": 271, "TIMEOUT": -29}.get(state, int(kv.get("ExitCode", "0:0").split(":")[0]))
        job["Exit_status"] = code
        job["comment"] = "Job run at {} and finished".format(job.get("stime", "?")) if state != "CANCELLED" else "Job deleted by qdel and finished"
    return job


def _hms(slurm_limit: str) -> str:
    if not slurm_limit or slurm_limit in ("UNLIMITED", "Partition_Limit"):
        return "01:00:00"
    days, _, rest = slurm_limit.rpartition("-")
    h, m, s = ([0, 0, 0] + [int(x) for x in rest.split(":")])[-3:]
    return f"{int(days or 0) * 24 + h:02d}:{m:02d}:{s:02d}"


def qstat(argv: list[str]) -> None:
    if "-F" not in argv or "json" not in argv or "-f" not in argv:
        die("qstat (double): only `qstat -f -F json [-x] JOBID` is implemented", 2)
    history = "-x" in argv
    ids = [a for a in argv if not a.startswith("-") and a != "json"]
    jobs = {}
    for pbs_id in ids:
        job = _job(pbs_id)
        if job is None:
            die(f"qstat: Unknown Job Id {pbs_id}", 153)
        if job["job_state"] == "F" and not history:
            die(f"qstat: {pbs_id} Job has finished, use -x or -H to obtain historical job information", 35)
        jobs[pbs_id] = job
    print(json.dumps({"timestamp": int(time.time()), "pbs_version": VERSION, "pbs_server": SERVER, "Jobs": jobs}, indent=4))


def qdel(argv: list[str]) -> None:
    ids = [a for a in argv if not a.startswith("-")]
    for pbs_id in ids:
        if _job(pbs_id) is None:
            die(f"qdel: Unknown Job Id {pbs_id}", 153)
        subprocess.run(["scancel", slurm_id(pbs_id)], check=False)


def pbsdsh(argv: list[str]) -> None:
    if len(argv) < 4 or argv[0] != "-n" or "--" not in argv:
        die("pbsdsh (double): only `pbsdsh -n INDEX -- cmd ...` is implemented", 2)
    index = int(argv[1])
    cmd = argv[argv.index("--") + 1 :]
    hosts = Path(os.environ["PBS_NODEFILE"]).read_text().split()
    os.execvp("srun", ["srun", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={hosts[index]}", "--cpu-bind=none", *cmd])


if __name__ == "__main__":
    {"qsub": qsub, "qstat": qstat, "qdel": qdel, "pbsdsh": pbsdsh}[Path(sys.argv[0]).name](sys.argv[1:])
