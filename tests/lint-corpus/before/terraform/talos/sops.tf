data "sops_file" "proxmox" {
  source_file = "../../secrets/proxmox-creds.enc.yaml"
}

locals {
  proxmox_api_token = "${data.sops_file.proxmox.data["proxmox_user"]}!${data.sops_file.proxmox.data["proxmox_token_id"]}=${data.sops_file.proxmox.data["proxmox_token_secret"]}"
}

provider "proxmox" {
  endpoint  = data.sops_file.proxmox.data["proxmox_url"] # lint-expect: api-path-present
  api_token = local.proxmox_api_token
  insecure  = tobool(data.sops_file.proxmox.data["proxmox_tls_insecure"])
}
