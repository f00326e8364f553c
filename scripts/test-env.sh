# Sourced by scripts/test.sh: puts the tools installed by install-test-deps.sh where the tests find them.
