#!/usr/bin/env python3
"""Compacts the shared research's endpoint-privileges.json (PVE 9 declarations and handler checks of every
endpoint Packer, Terraform, Ansible, proxmoxer and pvetoken call) into crates/pvetoken/data/endpoints.json, the
table `pvetoken learn` maps access-log lines with. Usage: scripts/gen-endpoints.py [RESEARCH_JSON]"""
import json
import os
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../shared/research/endpoint-privileges.json")
# The bridge check of qemu-server's create and clone (`check_bridge_access`: SDN.Use on the zone/bridge[/vlan] of each
# NIC, the zone `localnetwork` for plain Linux/OVS bridges) is prose in the research; as a check it reads the bridge
# from the request body or the source VM's configuration, which the access log never shows, so `learn` grants it on
# the zone (the conservative parent, propagated).
BRIDGE_CHECK = {"perm": "/sdn/zones/localnetwork/{bridge}", "privs": ["SDN.Use"], "any": False, "body": True,
                "note": "check_bridge_access (qemu-server): the bridge of each NIC, from the body or the source VM"}


# qemu-server's config update declares "any VM.Config.*", then checks one privilege per changed key
# (`check_vm_modify_config_perm`); the keys are in the body, which the log never shows: all of them, the
# conservative reading (`body` marks it, so `learn` says so).
CONFIG_KEYS_CHECK = {"perm": "/vms/{vmid}", "privs": ["VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU",
                     "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options",
                     "VM.Config.Cloudinit"], "any": False, "body": True,
                     "note": "check_vm_modify_config_perm (qemu-server): one privilege per changed key of the body"}
BODY_DEPENDENT = {"qemu.config.post": [CONFIG_KEYS_CHECK], "qemu.config.put": [CONFIG_KEYS_CHECK]}


def structured(check):
    if isinstance(check, str) and check.startswith("for each netN with bridge B: SDN.Use"):
        return BRIDGE_CHECK
    return check


# Endpoints the research does not list, read from qemu-server's `PVE/API2/Qemu.pm` (community.proxmox's
# proxmox_disk calls it to detach and remove disks).
EXTRA = [
    {"id": "qemu.unlink", "method": "PUT", "path": "/nodes/{node}/qemu/{vmid}/unlink",
     "check": {"perm": "/vms/{vmid}", "privs": ["VM.Config.Disk"], "any": False}},
]

data = json.load(open(src))
data["endpoints"] = data["endpoints"] + [e for e in EXTRA if e["id"] not in {x["id"] for x in data["endpoints"]}]
out = []
for e in data["endpoints"]:
    out.append({
        "id": e["id"], "method": e["method"], "path": e["path"], "check": e["check"],
        "handler_checks": [{"filter": h.get("filter"), "check": structured(h["check"])}
                           for h in e.get("handler_checks", []) if "check" in h]
        + [{"filter": None, "check": check} for check in BODY_DEPENDENT.get(e["id"], [])],
    })
dest = os.path.join(os.path.dirname(__file__), "../crates/pvetoken/data/endpoints.json")
json.dump({"source": "shared research endpoint-privileges.json (PVE 9 declarations and handler checks), compacted by scripts/gen-endpoints.py", "endpoints": out}, open(dest, "w"), indent=0)
print(f"{len(out)} endpoints -> {dest}")
