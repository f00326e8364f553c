#!/usr/bin/env bash
# Source me: exports the Proxmox credentials decrypted from SOPS, in each consumer's own form.
SECRETS_FILE="secrets/proxmox-creds.enc.yaml"
PROXMOX_USER=$(sops -d --extract '["proxmox_user"]' "$SECRETS_FILE")
PROXMOX_TOKEN_NAME=$(sops -d --extract '["proxmox_token_id"]' "$SECRETS_FILE")
PROXMOX_SECRET=$(sops -d --extract '["proxmox_token_secret"]' "$SECRETS_FILE")
export PROXMOX_URL="https://pve.home-infra.net:8006/api2/json"
export PROXMOX_USERNAME="${PROXMOX_USER}!${PROXMOX_TOKEN_NAME}"
export PROXMOX_TOKEN="${PROXMOX_SECRET}"
export PKR_VAR_proxmox_token="${PROXMOX_SECRET}"
export PROXMOX_VE_API_TOKEN="${PROXMOX_USER}!${PROXMOX_TOKEN_NAME}=${PROXMOX_SECRET}"
export PROXMOX_NODE="pve"
