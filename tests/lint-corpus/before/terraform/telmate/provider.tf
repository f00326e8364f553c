provider "proxmox" {
  pm_api_url          = "https://pve.home-infra.net:8006" # lint-expect: api-path-missing
  pm_api_token_id     = "terraform-token" # lint-expect: token-id-not-full
  pm_api_token_secret = var.pm_api_token_secret
  pm_tls_insecure     = true # lint-expect: insecure-tls
}

resource "proxmox_virtual_environment_role" "terraform" {
  role_id    = "TerraformProv"
  privileges = ["VM.Allocate", "VM.Audit", "VM.Monitor"] # lint-expect: privilege-removed-in-pve9
}
