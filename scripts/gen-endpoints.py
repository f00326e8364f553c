#!/usr/bin/env python3
"""Generates crates/pvetoken-acl/src/endpoints_data.rs, the typed endpoint catalog (`pvetoken_acl::endpoints`), from
the shared research's endpoint-privileges.json: every PVE endpoint Packer, Terraform, Ansible, proxmoxer and
pvetoken call, with its permission declaration per release (PVE 9 at the top; 7 and 8 where they differ, or where
the endpoint does not exist there) and the checks its handler makes, each with the upstream files it was read from.
Usage: scripts/gen-endpoints.py [RESEARCH_JSON]"""
import json
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../shared/research/endpoint-privileges.json")

# The bridge check of qemu-server's create and clone (`check_bridge_access`: SDN.Use on the zone/bridge[/vlan] of each
# NIC, the zone `localnetwork` for plain Linux/OVS bridges) is prose in the research; as a check it reads the bridge
# from the request body or the source VM's configuration, which the access log never shows.
BRIDGE_CHECK = {"perm": "/sdn/zones/localnetwork/{bridge}", "privs": ["SDN.Use"], "any": False, "body": True,
                "note": "check_bridge_access (qemu-server): the bridge of each NIC, from the body or the source VM"}

# qemu-server's config update declares "any VM.Config.*", then checks one privilege per changed key
# (`check_vm_modify_config_perm`); the keys are in the body.
CONFIG_KEYS_CHECK = {"perm": "/vms/{vmid}", "privs": ["VM.Config.Disk", "VM.Config.CDROM", "VM.Config.CPU",
                     "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options",
                     "VM.Config.Cloudinit"], "any": False, "body": True,
                     "note": "check_vm_modify_config_perm (qemu-server): one privilege per changed key of the body"}
BODY_DEPENDENT = {"qemu.config.post": [CONFIG_KEYS_CHECK], "qemu.config.put": [CONFIG_KEYS_CHECK]}

QEMU = "proxmox/qemu-server src/PVE/API2/Qemu.pm"
# Endpoints the research does not list, read from upstream (community.proxmox's proxmox_disk detaches and removes
# disks with unlink).
EXTRA = [
    {"id": "qemu.unlink", "method": "PUT", "path": "/nodes/{node}/qemu/{vmid}/unlink",
     "check": {"perm": "/vms/{vmid}", "privs": ["VM.Config.Disk"], "any": False}, "source": QEMU},
]


def rust_str(text):
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"' + out + '"'


def opt_str(text):
    return "None" if text is None else f"Some({rust_str(text)})"


def strs(items):
    return "&[" + ", ".join(rust_str(i) for i in items) + "]"


def perm(c, require_param=None):
    path = c["perm"]
    if " or " in path:
        # check_vm_perm: `/pool/{pool}` when a pool is passed, else `/vms/{vmid}`.
        alternatives = [p.strip() for p in path.split(" or ")]
        parts = []
        for alternative in alternatives:
            param = re.search(r"\{([^}]+)\}", alternative)
            first = alternative is alternatives[0] and param is not None
            parts.append(perm(dict(c, perm=alternative), param.group(1) if first else None))
        return "Check::Or(&[" + ", ".join(parts) + "])"
    return ("Check::Perm(Perm { path: %s, privs: %s, any: %s, require_param: %s, body: %s })" % (
        rust_str(path), strs(c.get("privs", [])), "true" if c.get("any") else "false",
        opt_str(c.get("require_param") or require_param), "true" if c.get("body") else "false"))


def check(c):
    if c is None:
        return "Check::Prose(\"none\")"
    if isinstance(c, str):
        if c.startswith("for each netN with bridge B: SDN.Use"):
            return check(BRIDGE_CHECK)
        return f"Check::Prose({rust_str(c)})"
    if isinstance(c, list):
        return "Check::And(&[" + ", ".join(check(x) for x in c) + "])"
    if "perm" in c:
        return perm(c)
    if "and" in c:
        return "Check::And(&[" + ", ".join(check(x) for x in c["and"]) + "])"
    if "or" in c:
        return "Check::Or(&[" + ", ".join(check(x) for x in c["or"]) + "])"
    if "check" in c:
        return check(c["check"])
    if c.get("user") == "all":
        return "Check::AnyUser"
    if c.get("user") == "world":
        return "Check::World"
    return f"Check::Prose({rust_str(json.dumps(c, sort_keys=True))})"


def when(text):
    if text is None:
        return "When::Always"
    if text.startswith("userid given and not the caller"):
        return 'When::ParamNotCaller("userid")'
    if text == "caller is not the task owner":
        return "When::NotTaskOwner"
    m = re.match(r"^'?([a-z][a-z0-9-]*)'?( param)? given$", text) or re.match(r"^([a-z][a-z0-9-]*) param \(", text)
    if m:
        return f"When::Given({rust_str(m.group(1))})"
    return f"When::Other({rust_str(text)})"


def handler_checks(entry_id, checks):
    out = []
    for h in checks:
        c = h.get("check", h.get("checks"))
        if c is None:
            continue
        out.append("HandlerCheck { when: %s, filter: %s, check: %s }" % (when(h.get("when")), opt_str(h.get("filter")), check(c)))
    for c in BODY_DEPENDENT.get(entry_id, []):
        out.append("HandlerCheck { when: When::Always, filter: None, check: %s }" % check(c))
    return "&[" + ", ".join(out) + "]"


def declaration(entry_id, decl):
    return "Declaration { check: %s, handler_checks: %s }" % (check(decl.get("check")), handler_checks(entry_id, decl.get("handler_checks", [])))


data = json.load(open(src))
endpoints = data["endpoints"] + [e for e in EXTRA if e["id"] not in {x["id"] for x in data["endpoints"]}]
METHODS = {"GET": "Method::Get", "POST": "Method::Post", "PUT": "Method::Put", "DELETE": "Method::Delete"}
lines = [
    "// Generated by scripts/gen-endpoints.py from the shared research's endpoint-privileges.json: do not edit by hand.",
    "",
    "use super::{Check, Declaration, Endpoint, HandlerCheck, Method, Perm, When};",
    "",
    "/// Every endpoint of the catalog, in the research's order.",
    f"pub(super) static ENDPOINTS: [Endpoint; {len(endpoints)}] = [",
]
for e in endpoints:
    current = declaration(e["id"], e)
    older = []
    for major in ("7", "8"):
        versions = e.get("versions", {})
        if major not in versions:
            continue
        decl = versions[major]
        if decl.get("check") is None and not decl.get("handler_checks"):
            older.append(f"({major}, None)")
            continue
        rendered = declaration(e["id"], decl)
        if rendered != current:
            older.append(f"({major}, Some({rendered}))")
    lines.append("    Endpoint {")
    lines.append(f"        id: {rust_str(e['id'])},")
    lines.append(f"        method: {METHODS[e['method']]},")
    lines.append(f"        path: {rust_str(e['path'])},")
    lines.append(f"        current: {current},")
    lines.append(f"        older: &[{', '.join(older)}],")
    lines.append(f"        source: {rust_str(e.get('source', ''))},")
    lines.append("    },")
lines.append("];")
dest = os.path.join(os.path.dirname(__file__), "../crates/pvetoken-acl/src/endpoints_data.rs")
with open(dest, "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"{len(endpoints)} endpoints -> {dest}")
