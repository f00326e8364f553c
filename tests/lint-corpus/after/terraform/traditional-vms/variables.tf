variable "proxmox_url" {
  type    = string
  default = "https://pve.home-infra.net:8006/"
}

variable "proxmox_api_token" {
  type      = string
  sensitive = true
}
