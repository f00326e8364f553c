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

# Listing filters the research does not record (pve-storage `API2/Storage/Config.pm` index: "Only list entries where
# you have 'Datastore.Audit' or 'Datastore.AllocateSpace' permissions on '/storage/<storage>'").
LIST_FILTERS = {"storage.config.index": [{"filter": "each storage", "check": {
    "perm": "/storage/{storage}", "privs": ["Datastore.Audit", "Datastore.AllocateSpace"], "any": True}}]}

QEMU = "proxmox/qemu-server src/PVE/API2/Qemu.pm"
# Endpoints the research does not list, read from upstream (community.proxmox's proxmox_disk detaches and removes
# disks with unlink).
AC = "proxmox/pve-access-control src/PVE/API2/"
MANAGER = "proxmox/pve-manager PVE/API2/"
ALL = {"user": "all"}
SELF = {"userid-param": "self"}
GROUP_MODIFY = {"userid-group": ["User.Modify"]}
TOKENS = {"or": [SELF, GROUP_MODIFY]}


def ep(id, method, path, check, source, handler_checks=()):
    return {"id": id, "method": method, "path": path, "check": check, "source": source,
            "handler_checks": list(handler_checks)}


# pve-access-control's user, token, role, group, ACL and realm endpoints (pvetoken's own calls) and the directory
# indexes and calls consumers make that the research does not list, read from upstream (access-control at 5ccd07d,
# pve-manager at 14a22df).
EXTRA = [
    ep("qemu.unlink", "PUT", "/nodes/{node}/qemu/{vmid}/unlink",
       {"perm": "/vms/{vmid}", "privs": ["VM.Config.Disk"], "any": False}, QEMU),
    ep("index", "GET", "/", ALL, MANAGER.replace("API2/", "API2.pm")),
    ep("access.index", "GET", "/access", ALL, AC + "AccessControl.pm"),
    ep("access.ticket.get", "GET", "/access/ticket", {"user": "world"}, AC + "AccessControl.pm"),
    ep("access.ticket.create", "POST", "/access/ticket", {"user": "world"}, AC + "AccessControl.pm (allowtoken => 0)"),
    ep("access.password", "PUT", "/access/password",
       {"or": [SELF, {"and": [{"userid-param": "Realm.AllocateUser"}, GROUP_MODIFY]}]},
       AC + "AccessControl.pm (allowtoken => 0)"),
    ep("access.users.index", "GET", "/access/users", ALL, AC + "User.pm",
       [{"filter": "each user but the caller", "check": {"perm": "/access/groups", "privs": ["User.Modify", "Sys.Audit"], "any": True}}]),
    ep("access.users.create", "POST", "/access/users",
       {"and": [{"userid-param": "Realm.AllocateUser"}, dict(GROUP_MODIFY, groups_param="create")]}, AC + "User.pm"),
    ep("access.users.read", "GET", "/access/users/{userid}", {"userid-group": ["User.Modify", "Sys.Audit"]}, AC + "User.pm"),
    ep("access.users.update", "PUT", "/access/users/{userid}", dict(GROUP_MODIFY, groups_param="update"), AC + "User.pm"),
    ep("access.users.delete", "DELETE", "/access/users/{userid}",
       {"and": [{"userid-param": "Realm.AllocateUser"}, GROUP_MODIFY]}, AC + "User.pm"),
    ep("access.tokens.index", "GET", "/access/users/{userid}/token", TOKENS, AC + "User.pm"),
    ep("access.tokens.read", "GET", "/access/users/{userid}/token/{tokenid}", TOKENS, AC + "User.pm"),
    ep("access.tokens.create", "POST", "/access/users/{userid}/token/{tokenid}", TOKENS, AC + "User.pm"),
    ep("access.tokens.update", "PUT", "/access/users/{userid}/token/{tokenid}", TOKENS, AC + "User.pm"),
    ep("access.tokens.delete", "DELETE", "/access/users/{userid}/token/{tokenid}", TOKENS, AC + "User.pm"),
    ep("access.roles.index", "GET", "/access/roles", ALL, AC + "Role.pm"),
    ep("access.roles.create", "POST", "/access/roles", {"perm": "/access", "privs": ["Sys.Modify"]}, AC + "Role.pm"),
    ep("access.roles.read", "GET", "/access/roles/{roleid}", ALL, AC + "Role.pm"),
    ep("access.roles.update", "PUT", "/access/roles/{roleid}", {"perm": "/access", "privs": ["Sys.Modify"]}, AC + "Role.pm"),
    ep("access.roles.delete", "DELETE", "/access/roles/{roleid}", {"perm": "/access", "privs": ["Sys.Modify"]}, AC + "Role.pm"),
    ep("access.acl.read", "GET", "/access/acl", ALL, AC + "ACL.pm",
       [{"filter": "each entry, unless Sys.Audit on /access", "check": {"perm-modify": "{path}"}}]),
    ep("access.acl.update", "PUT", "/access/acl", {"perm-modify": "{path}"}, AC + "ACL.pm"),
    ep("access.groups.index", "GET", "/access/groups", ALL, AC + "Group.pm",
       [{"filter": "each group", "check": {"perm": "/access/groups/{groupid}", "privs": ["User.Modify", "Sys.Audit", "Group.Allocate"], "any": True}}]),
    ep("access.groups.create", "POST", "/access/groups", {"perm": "/access/groups", "privs": ["Group.Allocate"]}, AC + "Group.pm"),
    ep("access.groups.read", "GET", "/access/groups/{groupid}",
       {"perm": "/access/groups", "privs": ["Sys.Audit", "Group.Allocate"], "any": True}, AC + "Group.pm"),
    ep("access.groups.update", "PUT", "/access/groups/{groupid}", {"perm": "/access/groups", "privs": ["Group.Allocate"]}, AC + "Group.pm"),
    ep("access.groups.delete", "DELETE", "/access/groups/{groupid}", {"perm": "/access/groups", "privs": ["Group.Allocate"]}, AC + "Group.pm"),
    ep("access.domains.index", "GET", "/access/domains", {"user": "world"}, AC + "Domains.pm"),
    ep("access.domains.read", "GET", "/access/domains/{realm}",
       {"perm": "/access/realm", "privs": ["Realm.Allocate", "Sys.Audit"], "any": True}, AC + "Domains.pm"),
    dict(ep("pools.delete_v8", "DELETE", "/pools", {"perm": "/pool/{poolid}", "privs": ["Pool.Allocate"]},
            MANAGER + "Pool.pm (delete_pool, 8.1+; the pool in a parameter, nested ids too)"),
         versions={"7": {"check": None}}),
    ep("nodes.node.index", "GET", "/nodes/{node}", ALL, MANAGER + "Nodes.pm"),
    ep("nodes.apt.index", "GET", "/nodes/{node}/apt", ALL, MANAGER + "APT.pm"),
    ep("nodes.apt.versions", "GET", "/nodes/{node}/apt/versions", {"perm": "/nodes/{node}", "privs": ["Sys.Audit"]}, MANAGER + "APT.pm"),
    ep("lxc.list", "GET", "/nodes/{node}/lxc", ALL, "proxmox/pve-container src/PVE/API2/LXC.pm",
       [{"filter": "each VM", "check": {"perm": "/vms/{vmid}", "privs": ["VM.Audit"], "any": False}}]),
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
    if c.get("userid-param") == "self":
        return "Check::UseridSelf"
    if "userid-param" in c:
        return f"Check::UseridRealm({strs([c['userid-param']])})"
    if "userid-group" in c:
        return f"Check::UseridGroup {{ privs: {strs(c['userid-group'])}, groups_param: {opt_str(c.get('groups_param'))} }}"
    if "perm-modify" in c:
        return f"Check::PermModify({rust_str(c['perm-modify'])})"
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
    for h in LIST_FILTERS.get(entry_id, []) if not any(x.get("filter") for x in checks) else []:
        out.append("HandlerCheck { when: When::Always, filter: %s, check: %s }" % (opt_str(h["filter"]), check(h["check"])))
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
