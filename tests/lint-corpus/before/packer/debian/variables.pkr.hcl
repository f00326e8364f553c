variable "proxmox_url" {
  type    = string
  default = env("PROXMOX_URL")
}

variable "proxmox_username" {
  type        = string
  description = "Proxmox user (format: user@realm)"
  default     = "terraform@pam" # lint-expect: token-id-not-full,pam-token-user
}

variable "proxmox_token" {
  type      = string
  default   = env("PROXMOX_TOKEN") # the whole PVEAPIToken=... string
  sensitive = true
}

variable "proxmox_skip_tls_verify" {
  type    = bool
  default = true # lint-expect: insecure-tls
}
