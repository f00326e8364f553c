variable "proxmox_url" {
  type    = string
  default = env("PROXMOX_URL") # https://HOST:8006/api2/json
}

variable "proxmox_username" {
  type        = string
  description = "Proxmox token ID (format: user@realm!tokenid)"
  default     = env("PROXMOX_USERNAME")
  sensitive   = true
}

variable "proxmox_token" {
  type      = string
  default   = env("PROXMOX_TOKEN") # just the secret value
  sensitive = true
}

variable "proxmox_skip_tls_verify" {
  type    = bool
  default = false
}
