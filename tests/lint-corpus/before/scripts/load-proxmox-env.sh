#!/usr/bin/env bash
# Source me: exports the Proxmox credentials decrypted from SOPS.
SECRETS_FILE="secrets/proxmox-creds.enc.yaml"
PROXMOX_USER=$(sops -d --extract '["proxmox_user"]' "$SECRETS_FILE")
PROXMOX_TOKEN_NAME=$(sops -d --extract '["proxmox_token_id"]' "$SECRETS_FILE")
PROXMOX_SECRET=$(sops -d --extract '["proxmox_token_secret"]' "$SECRETS_FILE")
export PROXMOX_URL="https://pve.home-infra.net:8006/api2/json"
export PROXMOX_TOKEN="PVEAPIToken=${PROXMOX_USER}!${PROXMOX_TOKEN_NAME}=${PROXMOX_SECRET}"  # lint-expect: pveapitoken-prefix
export PKR_VAR_proxmox_token="PVEAPIToken=terraform@pve!terraform-token=secret"  # lint-expect: pveapitoken-prefix
export PROXMOX_API_TOKEN="PVEAPIToken=${PROXMOX_USER}!${PROXMOX_TOKEN_NAME}=${PROXMOX_SECRET}"  # lint-expect: pveapitoken-prefix
export PROXMOX_USERNAME="terraform@pam!terraform-token"  # lint-expect: pam-token-user
export PROXMOX_NODE="pve"
