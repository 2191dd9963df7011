# Two (or three, and more with load_host_count > 1) Ubuntu bare-metal machines on Equinix Metal, as
# in Kong's framework.
#
# NOTE: Equinix has announced the end of service of Equinix Metal (June 2026); this module is
# kept for reproducing older results and may stop working at any time. See README.md.
#
# The token comes from TF_VAR_metal_auth_token (or PERF_TEST_METAL_AUTH_TOKEN, which perflab
# passes as TF_VAR_metal_auth_token). SSH user: root.

terraform {
  required_version = ">= 1.4"
  required_providers {
    equinix = {
      source  = "equinix/equinix"
      version = "~> 1.30"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
    local = {
      source  = "hashicorp/local"
      version = "~> 2.5"
    }
  }
}

variable "lab_id" {
  description = "Set by perflab: names and tags the lab's machines."
  type        = string
  default     = "default"
}

variable "metal_auth_token" {
  description = "Equinix Metal API token (PERF_TEST_METAL_AUTH_TOKEN)."
  type        = string
  sensitive   = true
}

variable "metal_project_id" {
  description = "Project id (PERF_TEST_METAL_PROJECT_ID)."
  type        = string
}

variable "metal_plan" {
  description = "Plan of the kong machine (PERF_TEST_METAL_PLAN)."
  type        = string
  default     = "c3.small.x86"
}

variable "metal_worker_plan" {
  description = "Plan of the worker machine."
  type        = string
  default     = "c3.small.x86"
}

variable "metal_db_plan" {
  description = "Plan of the separate database machine."
  type        = string
  default     = "c3.small.x86"
}

variable "metal_metro" {
  description = "Metro (two-letter code, e.g. da, sv, ny)."
  type        = string
  default     = "da"
}

variable "metal_os" {
  description = "Operating system slug (PERF_TEST_METAL_OS)."
  type        = string
  default     = "ubuntu_22_04"
}

variable "load_host_count" {
  description = "Load hosts, the worker included: machines load-2, load-3, ... like the worker are added (set by perflab from --driver-opt load_hosts=N)."
  type        = number
  default     = 1
  validation {
    condition     = var.load_host_count >= 1 && var.load_host_count <= 16 && floor(var.load_host_count) == var.load_host_count
    error_message = "load_host_count: an integer from 1 to 16."
  }
}

variable "seperate_db_node" {
  description = "Create a separate database machine (PERF_TEST_SEPERATE_DB_NODE; Kong's spelling)."
  type        = bool
  default     = false
}

variable "controller_cidr" {
  description = "The controller's address as a CIDR (e.g. 203.0.113.7/32): the only source that may reach SSH. Lab ports are open on the private network only."
  type        = string

  validation {
    condition     = can(cidrhost(var.controller_cidr, 0)) && !contains(["0.0.0.0/0", "::/0"], var.controller_cidr)
    error_message = "controller_cidr must be the controller's address as a CIDR (e.g. 203.0.113.7/32), not the whole internet."
  }
}

provider "equinix" {
  auth_token = var.metal_auth_token
}

resource "tls_private_key" "key" {
  algorithm = "ED25519"
}

resource "local_sensitive_file" "id_rsa" {
  content         = tls_private_key.key.private_key_openssh
  filename        = "${path.root}/id_rsa"
  file_permission = "0600"
}

resource "equinix_metal_project_ssh_key" "perf" {
  name       = "perflab-${var.lab_id}"
  public_key = tls_private_key.key.public_key_openssh
  project_id = var.metal_project_id
}

locals {
  # Load hosts beyond the worker (load_host_count - 1 of them).
  extra_load_hosts = [for i in range(2, var.load_host_count + 1) : "load-${i}"]
  machines = merge(
    {
      kong   = var.metal_plan
      worker = var.metal_worker_plan
    },
    var.seperate_db_node ? { db = var.metal_db_plan } : {},
    { for name in local.extra_load_hosts : name => var.metal_worker_plan }
  )
}

# Equinix Metal has no cloud firewall: each machine filters its own input at first boot
# (nftables, in Ubuntu's base image): SSH from the controller, everything from the private
# network (Metal's private addresses are in 10.0.0.0/8), nothing else.
locals {
  controller_family = strcontains(var.controller_cidr, ":") ? "ip6" : "ip"
  host_firewall     = <<-EOT
    #!/bin/sh
    nft -f - <<'RULES'
    table inet perflab {
      chain input {
        type filter hook input priority 0; policy drop;
        iif lo accept
        ct state established,related accept
        ${local.controller_family} saddr ${var.controller_cidr} tcp dport 22 accept
        ip saddr 10.0.0.0/8 accept
        ${local.controller_family} saddr ${var.controller_cidr} meta l4proto { icmp, ipv6-icmp } accept
        meta l4proto ipv6-icmp icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept
      }
    }
    RULES
  EOT
}

resource "equinix_metal_device" "machine" {
  for_each            = local.machines
  hostname            = "perflab-${var.lab_id}-${each.key}"
  plan                = each.value
  metro               = var.metal_metro
  operating_system    = var.metal_os
  billing_cycle       = "hourly"
  project_id          = var.metal_project_id
  project_ssh_key_ids = [equinix_metal_project_ssh_key.perf.id]
  tags                = ["perflab-${var.lab_id}"]
  user_data           = local.host_firewall
}

output "kong-ip" {
  value = equinix_metal_device.machine["kong"].access_public_ipv4
}

output "kong-internal-ip" {
  value = equinix_metal_device.machine["kong"].access_private_ipv4
}

output "worker-ip" {
  value = equinix_metal_device.machine["worker"].access_public_ipv4
}

output "worker-internal-ip" {
  value = equinix_metal_device.machine["worker"].access_private_ipv4
}

output "db-ip" {
  value = var.seperate_db_node ? equinix_metal_device.machine["db"].access_public_ipv4 : ""
}

output "db-internal-ip" {
  value = var.seperate_db_node ? equinix_metal_device.machine["db"].access_private_ipv4 : ""
}

output "load-hosts" {
  description = "Every load host, the worker first."
  value = [for name in concat(["worker"], local.extra_load_hosts) : {
    ip          = equinix_metal_device.machine[name].access_public_ipv4
    internal_ip = equinix_metal_device.machine[name].access_private_ipv4
  }]
}

output "id_rsa" {
  description = "Path of the private key (relative to the state dir)."
  value       = local_sensitive_file.id_rsa.filename
}

output "ssh-user" {
  value = "root"
}

output "toolchain" {
  value = "installed over SSH (apt)"
}
