# A two-host lab made of network namespaces on this machine: a local rehearsal of a cloud lab.
#
# Uses only the built-in `terraform_data` resource and `local-exec`, so `terraform init` needs
# no provider download. Needs root (ip netns, sshd). See scripts/up.sh for what is created and
# scripts/down.sh for how it is removed.

terraform {
  required_version = ">= 1.4"
}

variable "lab_id" {
  description = "Names the lab's namespaces (perflab-<lab_id>-kong, -worker); two labs need two ids."
  type        = string
  default     = "default"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,31}$", var.lab_id))
    error_message = "lab_id: 1-32 characters of a-z, 0-9 and '-'."
  }
}

variable "net_octet" {
  description = "Second octet of the lab's 10.N.0.0/16 (guarded by an unreachable route); two labs need two values."
  type        = number
  default     = 231
  validation {
    condition     = var.net_octet >= 0 && var.net_octet <= 255 && floor(var.net_octet) == var.net_octet
    error_message = "net_octet: an integer from 0 to 255."
  }
}

locals {
  net = "10.${var.net_octet}"
  dir = abspath(path.root)
  lab = {
    lab_id             = var.lab_id
    net                = local.net
    tag                = substr(sha1(var.lab_id), 0, 6)
    dir                = local.dir
    scripts            = abspath("${path.module}/scripts")
    kong_ip            = "${local.net}.0.2"
    worker_ip          = "${local.net}.0.6"
    kong_internal_ip   = "${local.net}.1.1"
    worker_internal_ip = "${local.net}.1.2"
    id_rsa             = "${local.dir}/id_rsa"
    known_hosts        = "${local.dir}/lab/known_hosts"
  }
}

resource "terraform_data" "lab" {
  input            = local.lab
  triggers_replace = local.lab

  provisioner "local-exec" {
    command = "sh \"$SCRIPTS/up.sh\""
    environment = {
      SCRIPTS    = self.input.scripts
      LAB        = self.input.lab_id
      NET        = self.input.net
      TAG        = self.input.tag
      DIR        = self.input.dir
      KONG_IP    = self.input.kong_ip
      WORKER_IP  = self.input.worker_ip
      KONG_INT   = self.input.kong_internal_ip
      WORKER_INT = self.input.worker_internal_ip
    }
  }

  # Destroy-time provisioners may only use `self`, and do not run for a tainted resource: up.sh
  # therefore also removes leftovers of an earlier lab with the same id before it builds.
  provisioner "local-exec" {
    when    = destroy
    command = "sh \"$SCRIPTS/down.sh\""
    environment = {
      SCRIPTS = self.input.scripts
      LAB     = self.input.lab_id
      NET     = self.input.net
      TAG     = self.input.tag
      DIR     = self.input.dir
    }
  }
}

output "kong-ip" {
  description = "Address of the kong host on the SSH (public) plane."
  value       = terraform_data.lab.output.kong_ip
}

output "kong-internal-ip" {
  description = "Address of the kong host on the load (internal) plane."
  value       = terraform_data.lab.output.kong_internal_ip
}

output "worker-ip" {
  description = "Address of the worker host on the SSH (public) plane."
  value       = terraform_data.lab.output.worker_ip
}

output "worker-internal-ip" {
  description = "Address of the worker host on the load (internal) plane."
  value       = terraform_data.lab.output.worker_internal_ip
}

output "id_rsa" {
  description = "Path of the private key authorized for root on both hosts (ed25519; name kept from Kong's contract)."
  value       = terraform_data.lab.output.id_rsa
}

output "ssh-user" {
  description = "The SSH user."
  value       = "root"
}

output "known_hosts" {
  description = "A known_hosts file with both hosts' keys (they change on every apply)."
  value       = terraform_data.lab.output.known_hosts
}

output "toolchain" {
  description = "How programs get onto the hosts: the namespaces share this machine's binaries."
  value       = "host packages"
}
