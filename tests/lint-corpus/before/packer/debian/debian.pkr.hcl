source "proxmox-clone" "debian" { # lint-expect: packer-clone-full-clone
  proxmox_url              = "https://pve.home-infra.net:8006" # lint-expect: api-path-missing
  username                 = "terraform@pve" # lint-expect: token-id-not-full
  token                    = "PVEAPIToken=terraform@pve!terraform-token=secret" # lint-expect: pveapitoken-prefix
  node                     = var.proxmox_node
  insecure_skip_tls_verify = true # lint-expect: insecure-tls
  clone_vm                 = "debian-12-cloudinit"
  qemu_agent               = true
}

build {
  sources = ["source.proxmox-clone.debian"]

  provisioner "shell" {
    inline = [
      "cloud-init status --wait", # lint-expect: cloud-init-exit-code
    ]
  }
}
