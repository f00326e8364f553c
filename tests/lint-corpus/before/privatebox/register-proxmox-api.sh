#!/bin/bash
# PrivateBox 97f1361: "escape" the `!` for the Semaphore JSON payload (bash keeps the six characters \u0021)
SEMAPHORE_URL="http://localhost:3000"
PROXMOX_USER=automation@pve
PROXMOX_TOKEN_ID="automation@pve\u0021ansible" # lint-expect: token-id-escaped-bang
