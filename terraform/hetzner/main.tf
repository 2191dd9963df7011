# Two (or three, and more with load_host_count > 1) Ubuntu servers on Hetzner Cloud, joined by a
# private network for the load traffic. The API token comes from TF_VAR_hcloud_token (or
# PERF_TEST_HETZNER_TOKEN, which perflab passes as TF_VAR_hcloud_token). SSH user: root.

terraform {
  required_version = ">= 1.4"
  required_providers {
    hcloud = {
      source  = "hetznercloud/hcloud"
      version = "~> 1.45"
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
  description = "Set by perflab: names and labels the lab's resources."
  type        = string
  default     = "default"
}

variable "hcloud_token" {
  description = "Hetzner Cloud API token (PERF_TEST_HETZNER_TOKEN)."
  type        = string
  sensitive   = true
}

variable "hcloud_server_type" {
  description = "Server type of the kong machine; dedicated vCPUs for stable numbers (PERF_TEST_HETZNER_SERVER_TYPE)."
  type        = string
  default     = "ccx23"
}

variable "hcloud_worker_server_type" {
  description = "Server type of the worker machine."
  type        = string
  default     = "ccx13"
}

variable "hcloud_db_server_type" {
  description = "Server type of the separate database machine."
  type        = string
  default     = "ccx13"
}

variable "hcloud_location" {
  description = "Location, e.g. fsn1, nbg1, hel1 (PERF_TEST_HETZNER_LOCATION)."
  type        = string
  default     = "fsn1"
}

variable "hcloud_network_zone" {
  description = "Network zone of the location (eu-central for fsn1, nbg1, hel1)."
  type        = string
  default     = "eu-central"
}

variable "hcloud_image" {
  description = "Image (PERF_TEST_HETZNER_IMAGE)."
  type        = string
  default     = "ubuntu-24.04"
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

provider "hcloud" {
  token = var.hcloud_token
}

resource "tls_private_key" "key" {
  algorithm = "ED25519"
}

resource "local_sensitive_file" "id_rsa" {
  content         = tls_private_key.key.private_key_openssh
  filename        = "${path.root}/id_rsa"
  file_permission = "0600"
}

resource "hcloud_ssh_key" "perf" {
  name       = "perflab-${var.lab_id}"
  public_key = tls_private_key.key.public_key_openssh
}

resource "hcloud_network" "perf" {
  name     = "perflab-${var.lab_id}"
  ip_range = "10.77.0.0/16"
}

resource "hcloud_network_subnet" "perf" {
  network_id   = hcloud_network.perf.id
  type         = "cloud"
  network_zone = var.hcloud_network_zone
  ip_range     = "10.77.1.0/24"
}

# Hetzner's firewalls filter the public interface only: the lab's ports stay reachable on the
# private network (10.77.1.0/24) and nowhere else; the public side answers SSH from the
# controller and nothing more.
resource "hcloud_firewall" "perf" {
  name = "perflab-${var.lab_id}"

  rule {
    description = "SSH from the controller"
    direction   = "in"
    protocol    = "tcp"
    port        = "22"
    source_ips  = [var.controller_cidr]
  }

  rule {
    description = "ping from the controller"
    direction   = "in"
    protocol    = "icmp"
    source_ips  = [var.controller_cidr]
  }
}

locals {
  # Load hosts beyond the worker (load_host_count - 1 of them): load-N at 10.77.1.(40+N).
  extra_load_hosts = [for i in range(2, var.load_host_count + 1) : "load-${i}"]
  machines = merge(
    {
      kong   = { type = var.hcloud_server_type, ip = "10.77.1.10" }
      worker = { type = var.hcloud_worker_server_type, ip = "10.77.1.20" }
    },
    var.seperate_db_node ? { db = { type = var.hcloud_db_server_type, ip = "10.77.1.30" } } : {},
    { for i, name in local.extra_load_hosts : name => { type = var.hcloud_worker_server_type, ip = "10.77.1.${42 + i}" } }
  )
}

resource "hcloud_server" "machine" {
  for_each     = local.machines
  name         = "perflab-${var.lab_id}-${each.key}"
  server_type  = each.value.type
  image        = var.hcloud_image
  location     = var.hcloud_location
  ssh_keys     = [hcloud_ssh_key.perf.id]
  firewall_ids = [hcloud_firewall.perf.id]
  labels = {
    perflab = var.lab_id
  }

  network {
    network_id = hcloud_network.perf.id
    ip         = each.value.ip
  }

  depends_on = [hcloud_network_subnet.perf]
}

output "kong-ip" {
  value = hcloud_server.machine["kong"].ipv4_address
}

output "kong-internal-ip" {
  value = local.machines["kong"].ip
}

output "worker-ip" {
  value = hcloud_server.machine["worker"].ipv4_address
}

output "worker-internal-ip" {
  value = local.machines["worker"].ip
}

output "db-ip" {
  value = var.seperate_db_node ? hcloud_server.machine["db"].ipv4_address : ""
}

output "db-internal-ip" {
  value = var.seperate_db_node ? local.machines["db"].ip : ""
}

output "load-hosts" {
  description = "Every load host, the worker first."
  value = [for name in concat(["worker"], local.extra_load_hosts) : {
    ip          = hcloud_server.machine[name].ipv4_address
    internal_ip = local.machines[name].ip
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
