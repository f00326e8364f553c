// Drive a PVE API (our lab) with the npm `proxmox-api` client, unchanged, as a user's script would.
//
// Configuration comes only from the environment (secrets never in argv):
//   PVE_HOST, PVE_PORT                 where the API listens (https; the CA comes from NODE_EXTRA_CA_CERTS)
//   PVE_TOKEN_ID, PVE_TOKEN_SECRET     token mode: full token id user@realm!name and its secret ...
//   PVE_USER, PVE_PASSWORD             ... or password mode
//   PROBE_TOKEN_OWNER, PROBE_TOKEN_NAME, PROBE_ROLE   the token this probe creates and the role it grants on /vms
// Steps: version, nodes, create the token (privsep), grant the ACL, read its permissions on /vms, log in with
// the new token, read its own permissions and try
// (expecting a refusal) to read its owner's permissions. Prints one JSON object (no secrets); exits 1 naming the failing step.
import proxmoxApi from 'proxmox-api';

const env = process.env;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function step(name, fn) {
  try {
    return await fn();
  } catch (e) {
    console.error(`proxmox-api step '${name}' failed: ${e && e.message}${e && e.cause ? ' (' + (e.cause.code || e.cause.message) + ')' : ''}`);
    process.exit(1);
  }
}

const base = { host: env.PVE_HOST, port: Number(env.PVE_PORT) };
const mode = env.PVE_TOKEN_ID ? 'token' : 'password';
const px = await step('construct client', () => proxmoxApi(mode === 'token'
  ? { ...base, tokenID: env.PVE_TOKEN_ID, tokenSecret: env.PVE_TOKEN_SECRET }
  : { ...base, username: env.PVE_USER, password: env.PVE_PASSWORD }));
const owner = env.PROBE_TOKEN_OWNER;
const name = env.PROBE_TOKEN_NAME;

const version = await step('GET /version', () => px.version.$get());
const nodes = await step('GET /nodes', () => px.nodes.$get());
const created = await step('POST token', () =>
  px.access.users.$(owner).token.$(name).$post({ privsep: true, comment: 'made by proxmox-api' }));
const full = created['full-tokenid'];
await step('PUT /access/acl', () => px.access.acl.$put({ path: '/vms', roles: env.PROBE_ROLE, tokens: full }));
const permsByCaller = await step('GET /access/permissions as caller',
  () => px.access.permissions.$get({ path: '/vms', userid: full }));
const fresh = await step('construct client with the new token',
  () => proxmoxApi({ ...base, tokenID: full, tokenSecret: created.value }));
const permsSelf = await step('GET /access/permissions as the new token', () => fresh.access.permissions.$get({ path: '/vms' }));
// The new token lacks Sys.Audit on /access, so reading its owner's permissions must be refused (PVE: 403).
let denied = null;
try {
  await fresh.access.permissions.$get({ userid: owner });
} catch (e) {
  denied = String(e && e.message);
}

console.log(JSON.stringify({
  client: 'proxmox-api',
  mode,
  version,
  nodes: nodes.map((n) => n.node).sort(),
  created: { 'full-tokenid': full, info: created.info, value_is_lowercase_uuid: UUID.test(created.value || '') },
  permissions_read_by_caller: permsByCaller,
  permissions_read_by_new_token: permsSelf,
  owner_permissions_denied_to_new_token: denied,
}));
