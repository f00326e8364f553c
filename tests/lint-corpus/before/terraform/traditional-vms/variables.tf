variable "proxmox_url" {
  type    = string
  default = "https://pve.home-infra.net:8006/api2/json" # lint-expect: api-path-present
}

variable "proxmox_api_token" {
  type      = string
  sensitive = true
}
