#!/usr/bin/env python3
"""Compacts the shared research's endpoint-privileges.json (PVE 9 declarations and handler checks of every
endpoint Packer, Terraform, Ansible, proxmoxer and pvetoken call) into crates/pvetoken/data/endpoints.json, the
table `pvetoken learn` maps access-log lines with. Usage: scripts/gen-endpoints.py [RESEARCH_JSON]"""
import json
import os
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../shared/research/endpoint-privileges.json")
data = json.load(open(src))
out = []
for e in data["endpoints"]:
    out.append({
        "id": e["id"], "method": e["method"], "path": e["path"], "check": e["check"],
        "handler_checks": [{"filter": h.get("filter"), "check": h["check"]} for h in e.get("handler_checks", []) if "check" in h],
    })
dest = os.path.join(os.path.dirname(__file__), "../crates/pvetoken/data/endpoints.json")
json.dump({"source": "shared research endpoint-privileges.json (PVE 9 declarations and handler checks), compacted by scripts/gen-endpoints.py", "endpoints": out}, open(dest, "w"), indent=0)
print(f"{len(out)} endpoints -> {dest}")
