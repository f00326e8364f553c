source "proxmox-clone" "debian" {
  proxmox_url              = var.proxmox_url
  username                 = var.proxmox_username # terraform@pve!terraform-token
  token                    = var.proxmox_token    # just the secret
  node                     = var.proxmox_node
  insecure_skip_tls_verify = var.proxmox_skip_tls_verify
  clone_vm                 = "debian-12-cloudinit"
  full_clone               = true
  qemu_agent               = true
}

build {
  sources = ["source.proxmox-clone.debian"]

  provisioner "shell" {
    inline = [
      "cloud-init status --wait",
    ]
    valid_exit_codes = [0, 2] # degraded done is fine
  }
}
