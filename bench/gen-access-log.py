#!/usr/bin/env python3
"""Generates a pveproxy access log for benchmarks of `learn --access-log` and `audit --access-log`.

usage: bench/gen-access-log.py OUT_FILE [LINES] [--user-cfg FILE] [--tokens N] [--seed S]

Lines are in the format the lab writes (crates/pvetoken-lab/src/access_log.rs, pve-http-server's `log_request`):
    CLIENT - USERID [DD/MM/YYYY:HH:MM:SS +ZZZZ] "METHOD URI HTTP/1.1" STATUS LENGTH
Calls come from the endpoint catalog the reader maps them with (crates/pvetoken-acl/src/endpoints_data.rs), with path
parameters filled (each token works on a few guests, nodes and storages, so the distinct calls stay far fewer than
the lines, as in a real log), plus unknown endpoints, unauthenticated calls (`-`), 401/403/500 answers, query
strings (`/cluster/resources?type=vm`) and a few malformed lines. Token ids come from --user-cfg (the tokens of
shared/bench/gen_big_usercfg.py's file, so `audit --user-cfg` finds them) or are made up. Deterministic per seed.
"""
import argparse
import json
import pathlib
import random
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PARAMS = {
    "node": [f"node{i}" for i in range(1, 6)],
    "storage": ["local", "local-lvm", "nfs", "ceph"],
    "zone": ["z1", "z2"],
    "vnet": ["vnet1", "vnet2"],
    "pool": ["dev", "prod"],
}


def token_ids(user_cfg, count, rng):
    if user_cfg:
        ids = [line.split(":")[1] for line in open(user_cfg) if line.startswith("token:")]
        rng.shuffle(ids)
        return sorted(ids[:count])
    return [f"bench{i}@pve!tok{i % 3}" for i in range(count)]


def fill(template, token_rng):
    def value(match):
        name = match.group(1)
        if name in ("vmid", "newid"):
            return str(token_rng.choice([100, 101, 102, 200, 4711]) + token_rng.randrange(0, 3))
        return token_rng.choice(PARAMS.get(name, ["x1"]))
    return re.sub(r"\{([^}]+)\}", value, template)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("lines", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--user-cfg")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    data = open(ROOT / "crates/pvetoken-acl/src/endpoints_data.rs").read()
    endpoints = [{"method": m.upper(), "path": p} for m, p in
                 re.findall(r'method: Method::(\w+),\n\s+path: "([^"]+)"', data)]
    tokens = token_ids(args.user_cfg, args.tokens, rng)
    # Each token calls a handful of endpoints, mostly reads, on its own few guests.
    habits = {}
    for token in tokens:
        reads = [e for e in endpoints if e["method"] == "GET"]
        habits[token] = rng.sample(reads, min(12, len(reads))) + rng.sample(endpoints, 4)
    written = 0
    with open(args.out, "w") as out:
        while written < args.lines:
            second = written // 200
            stamp = f"03/12/2026:{(second // 3600) % 24:02d}:{(second // 60) % 60:02d}:{second % 60:02d} +0100"
            roll = rng.random()
            if roll < 0.00001:
                out.write("this is not an access-log line\n")
                written += 1
                continue
            if roll < 0.02:
                out.write(f'10.0.0.9 - - [{stamp}] "GET /api2/json/version HTTP/1.1" 401 0\n')
                written += 1
                continue
            token = tokens[rng.randrange(len(tokens))]
            token_rng = random.Random(f"{token}/{rng.randrange(8)}")
            if roll < 0.03:
                uri = f"/api2/json/nodes/{fill('{node}', token_rng)}/not-an-endpoint"
                method = "GET"
            else:
                endpoint = rng.choice(habits[token])
                method = endpoint["method"]
                uri = "/api2/json" + fill(endpoint["path"], token_rng)
                if endpoint["path"] == "/cluster/resources" and rng.random() < 0.5:
                    uri += "?type=vm"
            status = 200 if rng.random() < 0.95 else rng.choice([403, 403, 500, 596])
            client = "::ffff:10.0.0.5" if rng.random() < 0.5 else "192.168.1.20"
            out.write(f'{client} - {token} [{stamp}] "{method} {uri} HTTP/1.1" {status} {rng.randrange(10, 90000)}\n')
            written += 1
    print(f"{args.out}: {written} lines, {len(tokens)} tokens (first: {tokens[0]})")


if __name__ == "__main__":
    main()
