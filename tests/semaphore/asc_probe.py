"""Drives a Semaphore API with the PyPI package ansible-semaphore-client (module `semaphore_client`).

Its 0.0.2 wheel ships the generated ApiClient and models but not the per-tag API classes, so this probe calls
ApiClient.call_api with the package's own models: its serializer builds the request bodies (login, environment) and
its deserializer type-checks every answer against its generated models.

usage: SEMAPHORE_PASSWORD=... python asc_probe.py BASE_URL USER
Prints one line per step; exits non-zero on the first failure. Never prints the password.
"""
import os
import sys

from semaphore_client import ApiClient, Configuration
from semaphore_client.exceptions import ApiException
from semaphore_client.model.api_token import APIToken
from semaphore_client.model.environment import Environment
from semaphore_client.model.environment_request import EnvironmentRequest
from semaphore_client.model.login import Login
from semaphore_client.model.project import Project
from semaphore_client.model.user import User


def main() -> int:
    base, user = sys.argv[1], sys.argv[2]
    password = os.environ["SEMAPHORE_PASSWORD"]
    config = Configuration(host=base.rstrip("/") + "/api", discard_unknown_keys=True)
    client = ApiClient(config)

    # Login with the client's Login model; the answer is 204 and the `semaphore` cookie.
    _, status, headers = client.call_api(
        "/auth/login", "POST", body=Login(auth=user, password=password),
        header_params={"Content-Type": "application/json"}, _return_http_data_only=False)
    assert status == 204, f"login answered {status}"
    cookie = headers.get("Set-Cookie", "").split(";")[0]
    assert cookie.startswith("semaphore="), "no semaphore cookie"
    client.cookie = cookie
    print("login: 204 with semaphore cookie")

    me = client.call_api("/user", "GET", response_type=(User,), _return_http_data_only=True)
    assert me.username == user, me
    print(f"user: {me.username} admin={me.admin}")

    # An API token, then switch to Bearer auth.
    token = client.call_api("/user/tokens", "POST", response_type=(APIToken,), _return_http_data_only=True)
    assert token.id and not token.expired
    client.cookie = None
    client.default_headers["Authorization"] = f"Bearer {token.id}"
    print("token: created, now using Bearer auth")

    projects = client.call_api("/projects", "GET", response_type=([Project],), _return_http_data_only=True)
    project = next(p for p in projects if p.name == "PrivateBox")
    print(f"projects: {[p.name for p in projects]}")

    # Create an environment with the client's EnvironmentRequest model (it predates `env` and `secrets`).
    body = EnvironmentRequest(name="asc-probe", project_id=project.id, json="{}", password="")
    created = client.call_api(
        f"/project/{project.id}/environment", "POST", body=body,
        header_params={"Content-Type": "application/json"},
        response_type=(Environment,), _return_http_data_only=True)
    assert created.name == "asc-probe" and created.id > 0, created
    print(f"environment: created id {created.id}")

    listed = client.call_api(
        f"/project/{project.id}/environment", "GET", query_params=[("sort", "name"), ("order", "asc")],
        response_type=([Environment],), _return_http_data_only=True)
    assert any(env.id == created.id for env in listed)
    one = client.call_api(
        f"/project/{project.id}/environment/{created.id}", "GET", response_type=(Environment,),
        _return_http_data_only=True)
    assert one.json == "{}", one
    print(f"environment: listed ({len(listed)}) and read back")

    client.call_api(f"/project/{project.id}/environment/{created.id}", "DELETE")
    try:
        client.call_api(f"/project/{project.id}/environment/{created.id}", "GET", response_type=(Environment,))
        raise AssertionError("deleted environment still readable")
    except ApiException as error:
        assert error.status == 404, error.status
    print("environment: deleted, then 404")

    client.default_headers.pop("Authorization")
    try:
        client.call_api("/projects", "GET", response_type=([Project],))
        raise AssertionError("anonymous request accepted")
    except ApiException as error:
        assert error.status == 401, error.status
    print("anonymous: 401")
    print("ansible-semaphore-client probe: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
