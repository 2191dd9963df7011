# Two (or three, and more with load_host_count > 1) Ubuntu droplets on DigitalOcean. The API token
# comes from TF_VAR_do_token (or PERF_TEST_DIGITALOCEAN_TOKEN, which perflab passes as
# TF_VAR_do_token). SSH user: root.

terraform {
  required_version = ">= 1.4"
  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.0"
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
  description = "Set by perflab: names the lab's resources."
  type        = string
  default     = "default"
}

variable "do_token" {
  description = "DigitalOcean API token (PERF_TEST_DIGITALOCEAN_TOKEN)."
  type        = string
  sensitive   = true
}

variable "do_project_name" {
  description = "Project the droplets are attached to (PERF_TEST_DIGITALOCEAN_PROJECT_NAME)."
  type        = string
  default     = "Benchmark"
}

variable "do_size" {
  description = "Size of the kong droplet (PERF_TEST_DIGITALOCEAN_SIZE)."
  type        = string
  default     = "c2-8vcpu-16gb"
}

variable "do_worker_size" {
  description = "Size of the worker droplet."
  type        = string
  default     = "c-4"
}

variable "do_db_size" {
  description = "Size of the separate database droplet."
  type        = string
  default     = "s-2vcpu-4gb"
}

variable "do_region" {
  description = "Region (PERF_TEST_DIGITALOCEAN_REGION)."
  type        = string
  default     = "sfo3"
}

variable "do_os" {
  description = "Image slug (PERF_TEST_DIGITALOCEAN_OS)."
  type        = string
  default     = "ubuntu-24-04-x64"
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
  description = "Create a separate database droplet (PERF_TEST_SEPERATE_DB_NODE; Kong's spelling)."
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

provider "digitalocean" {
  token = var.do_token
}

resource "tls_private_key" "key" {
  algorithm = "ED25519"
}

resource "local_sensitive_file" "id_rsa" {
  content         = tls_private_key.key.private_key_openssh
  filename        = "${path.root}/id_rsa"
  file_permission = "0600"
}

resource "digitalocean_ssh_key" "perf" {
  name       = "perflab-${var.lab_id}"
  public_key = tls_private_key.key.public_key_openssh
}

locals {
  # Load hosts beyond the worker (load_host_count - 1 of them).
  extra_load_hosts = [for i in range(2, var.load_host_count + 1) : "load-${i}"]
  machines = merge(
    {
      kong   = var.do_size
      worker = var.do_worker_size
    },
    var.seperate_db_node ? { db = var.do_db_size } : {},
    { for name in local.extra_load_hosts : name => var.do_worker_size }
  )
}

resource "digitalocean_droplet" "machine" {
  for_each = local.machines
  name     = "perflab-${var.lab_id}-${each.key}"
  image    = var.do_os
  region   = var.do_region
  size     = each.value
  ssh_keys = [digitalocean_ssh_key.perf.fingerprint]
  tags     = ["perflab-${var.lab_id}"]
}

# The region's default VPC, where the droplets are placed: lab traffic uses its addresses.
data "digitalocean_vpc" "lab" {
  region = var.do_region
}

# SSH from the controller only; every lab port only from the private network.
resource "digitalocean_firewall" "perf" {
  name        = "perflab-${var.lab_id}"
  droplet_ids = [for d in digitalocean_droplet.machine : d.id]

  inbound_rule {
    protocol         = "tcp"
    port_range       = "22"
    source_addresses = [var.controller_cidr]
  }

  inbound_rule {
    protocol         = "tcp"
    port_range       = "1-65535"
    source_addresses = [data.digitalocean_vpc.lab.ip_range]
  }

  inbound_rule {
    protocol         = "udp"
    port_range       = "1-65535"
    source_addresses = [data.digitalocean_vpc.lab.ip_range]
  }

  inbound_rule {
    protocol         = "icmp"
    source_addresses = [data.digitalocean_vpc.lab.ip_range, var.controller_cidr]
  }

  # Packages are installed over SSH (apt): outbound stays open.
  outbound_rule {
    protocol              = "tcp"
    port_range            = "1-65535"
    destination_addresses = ["0.0.0.0/0", "::/0"]
  }

  outbound_rule {
    protocol              = "udp"
    port_range            = "1-65535"
    destination_addresses = ["0.0.0.0/0", "::/0"]
  }

  outbound_rule {
    protocol              = "icmp"
    destination_addresses = ["0.0.0.0/0", "::/0"]
  }
}

resource "digitalocean_project" "perf" {
  name        = "${var.do_project_name}-${var.lab_id}"
  description = "perflab lab ${var.lab_id}"
  purpose     = "Benchmark"
  resources   = [for d in digitalocean_droplet.machine : d.urn]
}

output "kong-ip" {
  value = digitalocean_droplet.machine["kong"].ipv4_address
}

output "kong-internal-ip" {
  value = digitalocean_droplet.machine["kong"].ipv4_address_private
}

output "worker-ip" {
  value = digitalocean_droplet.machine["worker"].ipv4_address
}

output "worker-internal-ip" {
  value = digitalocean_droplet.machine["worker"].ipv4_address_private
}

output "db-ip" {
  value = var.seperate_db_node ? digitalocean_droplet.machine["db"].ipv4_address : ""
}

output "db-internal-ip" {
  value = var.seperate_db_node ? digitalocean_droplet.machine["db"].ipv4_address_private : ""
}

output "load-hosts" {
  description = "Every load host, the worker first."
  value = [for name in concat(["worker"], local.extra_load_hosts) : {
    ip          = digitalocean_droplet.machine[name].ipv4_address
    internal_ip = digitalocean_droplet.machine[name].ipv4_address_private
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
