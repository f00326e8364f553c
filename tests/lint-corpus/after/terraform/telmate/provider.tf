provider "proxmox" {
  pm_api_url          = "https://pve.home-infra.net:8006/api2/json"
  pm_api_token_id     = "terraform@pve!terraform-token"
  pm_api_token_secret = var.pm_api_token_secret
  pm_tls_insecure     = false
}

resource "proxmox_virtual_environment_role" "terraform" {
  role_id    = "TerraformProv"
  privileges = ["VM.Allocate", "VM.Audit", "VM.GuestAgent.Audit", "Sys.Audit"]
}
