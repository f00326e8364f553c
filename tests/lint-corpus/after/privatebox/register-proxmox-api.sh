#!/bin/bash
# community.proxmox layout: owner in PROXMOX_USER, token name alone in PROXMOX_TOKEN_ID (`!` needs no escaping anyway)
SEMAPHORE_URL="http://localhost:3000"
PROXMOX_USER=automation@pve
PROXMOX_TOKEN_ID='ansible'
