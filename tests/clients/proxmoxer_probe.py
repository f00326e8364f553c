"""Drive a PVE API (our lab) with proxmoxer from PyPI, exactly as a user's script would.

Configuration comes only from the environment (secrets never in argv):
  PVE_HOST, PVE_PORT                 where the API listens (https; the CA comes from REQUESTS_CA_BUNDLE)
  PVE_USER                           user@realm that authenticates
  PVE_PASSWORD                       password mode (POST /access/ticket, cookie + CSRF) ...
  PVE_TOKEN_NAME, PVE_TOKEN_SECRET   ... or token mode (Authorization: PVEAPIToken=...)
  PROBE_TOKEN_OWNER, PROBE_TOKEN_NAME   the token this probe creates (privsep=1)
  PROBE_ROLE                          the role it grants that token on /vms
Steps: read the version, list nodes, create the token, grant the ACL, read the new token's permissions on /vms
as the caller, then log in with the new token, read its own permissions on /vms and try (expecting a refusal)
to read its owner's permissions.
Prints one JSON object on stdout (never a secret); on failure prints the failing step to stderr and exits 1.
TLS is always verified (verify_ssl=True).
"""
import json
import os
import re
import sys

import proxmoxer
from proxmoxer import ProxmoxAPI

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def step(name, fn):
    try:
        return fn()
    except Exception as error:  # report the client's own error text, then fail
        print(f"proxmoxer step '{name}' failed: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)


def connect(**auth):
    return ProxmoxAPI(os.environ["PVE_HOST"], port=int(os.environ["PVE_PORT"]), verify_ssl=True, **auth)


def main():
    user = os.environ["PVE_USER"]
    if os.environ.get("PVE_PASSWORD"):
        mode = "password"
        api = step("login", lambda: connect(user=user, password=os.environ["PVE_PASSWORD"]))
    else:
        mode = "token"
        api = connect(user=user, token_name=os.environ["PVE_TOKEN_NAME"], token_value=os.environ["PVE_TOKEN_SECRET"])
    owner = os.environ["PROBE_TOKEN_OWNER"]
    name = os.environ["PROBE_TOKEN_NAME"]
    role = os.environ["PROBE_ROLE"]

    version = step("GET /version", lambda: api.version.get())
    nodes = step("GET /nodes", lambda: api.nodes.get())
    created = step("POST token", lambda: api.access.users(owner).token(name).post(privsep=1, comment="made by proxmoxer"))
    full = created["full-tokenid"]
    step("PUT /access/acl", lambda: api.access.acl.put(path="/vms", roles=role, tokens=full))
    perms_by_caller = step("GET /access/permissions as caller",
                           lambda: api.access.permissions.get(path="/vms", userid=full))
    new = connect(user=owner, token_name=name, token_value=created["value"])
    new_version = step("GET /version with the new token", lambda: new.version.get())
    perms_self = step("GET /access/permissions as the new token", lambda: new.access.permissions.get(path="/vms"))
    # The new token lacks Sys.Audit on /access, so reading its owner's permissions must be refused (PVE: 403).
    try:
        new.access.permissions.get(userid=owner)
        denied = None
    except Exception as error:
        denied = f"{type(error).__name__}: {error}"

    print(json.dumps({
        "client": "proxmoxer",
        "client_version": getattr(proxmoxer, "__version__", "?"),
        "mode": mode,
        "version": version,
        "nodes": sorted(n["node"] for n in nodes),
        "created": {"full-tokenid": full, "info": created.get("info"),
                    "value_is_lowercase_uuid": bool(UUID.match(created.get("value", "")))},
        "new_token_version": new_version.get("version"),
        "permissions_read_by_caller": perms_by_caller,
        "permissions_read_by_new_token": perms_self,
        "owner_permissions_denied_to_new_token": denied,
    }))


main()
