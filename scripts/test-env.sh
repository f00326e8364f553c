# Sourced by scripts/test.sh: puts the tools installed by install-test-deps.sh where the tests find them.
# Source it yourself to run single tests by hand:  . scripts/test-env.sh && cargo test -p pvetoken --test it third_party
#
# Exports:
#   PATH                      .venv-tests/bin first (ansible-playbook, sops, schemathesis, the venv's python)
#   PVETOKEN_TEST_VENV        the venv (tests run "$PVETOKEN_TEST_VENV/bin/python" for proxmoxer and friends)
#   PVETOKEN_TEST_NODE_DIR    tests/clients, whose node_modules holds the npm clients (run node scripts from there)
#   NODE_PATH                 tests/clients/node_modules (for CommonJS requires from elsewhere)
#   PVETOKEN_TEST_CLIENTS     tests/clients (probe scripts, playbooks, packer templates)
#   CHECKPOINT_DISABLE=1      packer must not phone home
#   ANSIBLE_*                 quiet, local, no host-key or retry files, no collections path outside the venv
# Not exported on purpose: SSL_CERT_FILE / REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE / NODE_EXTRA_CA_CERTS. This machine
# sets them globally to the system bundle; every test sets them per child process to the lab's CA file.
_pvetoken_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PVETOKEN_TEST_VENV="$_pvetoken_root/.venv-tests"
export PVETOKEN_TEST_CLIENTS="$_pvetoken_root/tests/clients"
export PVETOKEN_TEST_NODE_DIR="$_pvetoken_root/tests/clients"
export NODE_PATH="$_pvetoken_root/tests/clients/node_modules${NODE_PATH:+:$NODE_PATH}"
case ":$PATH:" in
  *":$PVETOKEN_TEST_VENV/bin:"*) ;;
  *) export PATH="$PVETOKEN_TEST_VENV/bin:$PATH" ;;
esac
export CHECKPOINT_DISABLE=1
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_HOST_KEY_CHECKING=0
export ANSIBLE_LOCALHOST_WARNING=0
export ANSIBLE_INVENTORY_UNPARSED_WARNING=0
export ANSIBLE_PYTHON_INTERPRETER="$PVETOKEN_TEST_VENV/bin/python"
unset _pvetoken_root
