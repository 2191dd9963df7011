# A lab of network namespaces on this machine (kong, worker and load_host_count - 1 more load
# hosts): a local rehearsal of a cloud lab.
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

variable "load_host_count" {
  description = "Load hosts, the worker included: load_host_count - 1 namespaces load-2, load-3, ... are added (set by perflab from --driver-opt load_hosts=N)."
  type        = number
  default     = 1
  validation {
    condition     = var.load_host_count >= 1 && var.load_host_count <= 16 && floor(var.load_host_count) == var.load_host_count
    error_message = "load_host_count: an integer from 1 to 16."
  }
}

locals {
  net = "10.${var.net_octet}"
  dir = abspath(path.root)
  # Host i (0 kong, 1 worker, 2.. load-2, load-3, ...) gets the SSH-plane /30 at 10.N.0.4i
  # (root side .4i+1, host .4i+2) and 10.N.1.(i+1) on the internal plane; `code` names its
  # veths (pl<tag><code>0 ...), which must fit in 15 characters.
  hosts = [for i in range(var.load_host_count + 1) : {
    name        = i == 0 ? "kong" : (i == 1 ? "worker" : "load-${i}")
    code        = i == 0 ? "k" : (i == 1 ? "w" : tostring(i))
    root_ip     = "${local.net}.0.${4 * i + 1}"
    ip          = "${local.net}.0.${4 * i + 2}"
    internal_ip = "${local.net}.1.${i + 1}"
  }]
  lab = {
    lab_id             = var.lab_id
    net                = local.net
    tag                = substr(sha1(var.lab_id), 0, 6)
    dir                = local.dir
    scripts            = abspath("${path.module}/scripts")
    kong_ip            = local.hosts[0].ip
    worker_ip          = local.hosts[1].ip
    kong_internal_ip   = local.hosts[0].internal_ip
    worker_internal_ip = local.hosts[1].internal_ip
    # One line per host for up.sh: name code root-address address internal-address.
    hosts       = join("\n", [for h in local.hosts : "${h.name} ${h.code} ${h.root_ip} ${h.ip} ${h.internal_ip}"])
    load_hosts  = [for h in slice(local.hosts, 1, length(local.hosts)) : { ip = h.ip, internal_ip = h.internal_ip }]
    id_rsa      = "${local.dir}/id_rsa"
    known_hosts = "${local.dir}/lab/known_hosts"
  }
}

resource "terraform_data" "lab" {
  input            = local.lab
  triggers_replace = local.lab

  provisioner "local-exec" {
    command = "sh \"$SCRIPTS/up.sh\""
    environment = {
      SCRIPTS = self.input.scripts
      LAB     = self.input.lab_id
      NET     = self.input.net
      TAG     = self.input.tag
      DIR     = self.input.dir
      HOSTS   = self.input.hosts
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

output "load-hosts" {
  description = "Every load host, the worker first: load_host_count namespaces, each with its own addresses."
  value       = terraform_data.lab.output.load_hosts
}

output "id_rsa" {
  description = "Path of the private key authorized for root on every host (ed25519; name kept from Kong's contract)."
  value       = terraform_data.lab.output.id_rsa
}

output "ssh-user" {
  description = "The SSH user."
  value       = "root"
}

output "known_hosts" {
  description = "A known_hosts file with every host's key (they change on every apply)."
  value       = terraform_data.lab.output.known_hosts
}

output "toolchain" {
  description = "How programs get onto the hosts: the namespaces share this machine's binaries."
  value       = "host packages"
}
