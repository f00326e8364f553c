#!/usr/bin/env bash
# Builds the Debian package of pvetoken: target/debian/pvetoken_<version>-1_<arch>.deb.
#
#   scripts/build-deb.sh            # installs cargo-deb first if it is missing (cargo install cargo-deb --locked)
#
# Build on Debian 12 (the oldest base pvetoken supports: PVE 8) so the binary's glibc needs are met on Debian 12
# and 13. Man pages (one per subcommand) and bash/zsh/fish completions are generated from the clap definitions
# by the release binary itself, so they always match its --help.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
cargo build --release --locked -p pvetoken
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
bin=target/release/pvetoken
"$bin" man --out-dir "$assets/man" >/dev/null
"$bin" completions bash > "$assets/completions/pvetoken.bash"
"$bin" completions zsh > "$assets/completions/_pvetoken"
"$bin" completions fish > "$assets/completions/pvetoken.fish"
cargo deb --locked --no-build --strip -p pvetoken "$@"
deb=$(ls -t target/debian/pvetoken_*.deb | head -1)
printf 'built %s (%s bytes; binary %s bytes installed)\n' "$deb" "$(stat -c %s "$deb")" \
  "$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/pvetoken | wc -c)"
