# Bring your own machines: nothing is created, the outputs are the variables. Needs no provider,
# so `terraform init` works offline.

terraform {
  required_version = ">= 1.4"
}

variable "kong_ip" {
  description = "Address the controller uses to reach the kong (gateway) machine over SSH."
  type        = string
}

variable "kong_internal_ip" {
  description = "Address the other machines use for the kong machine (default: kong_ip)."
  type        = string
  default     = ""
}

variable "worker_ip" {
  description = "Address the controller uses to reach the worker machine over SSH."
  type        = string
}

variable "worker_internal_ip" {
  description = "Address the other machines use for the worker machine (default: worker_ip)."
  type        = string
  default     = ""
}

variable "db_ip" {
  description = "A separate database machine (empty: the database runs on the kong machine)."
  type        = string
  default     = ""
}

variable "db_internal_ip" {
  description = "Address the other machines use for the database machine (default: db_ip)."
  type        = string
  default     = ""
}

variable "load_ips" {
  description = "Load hosts besides the worker (load-2, load-3, ...): addresses the controller uses for SSH."
  type        = list(string)
  default     = []
}

variable "load_internal_ips" {
  description = "Addresses the other machines use for the load hosts of load_ips, in the same order (default: load_ips)."
  type        = list(string)
  default     = []
}

variable "load_host_count" {
  description = "Set by perflab (--driver-opt load_hosts=N): load hosts asked for, the worker included; load_ips must name the N - 1 others."
  type        = number
  default     = 1
}

variable "ssh_key_path" {
  description = "Absolute path of the private key for ssh_user on every machine."
  type        = string
  validation {
    condition     = startswith(var.ssh_key_path, "/") && fileexists(var.ssh_key_path)
    error_message = "ssh_key_path must be the absolute path of an existing private key file."
  }
}

variable "ssh_user" {
  description = "SSH user: root, or a user with passwordless sudo."
  type        = string
  default     = "root"
}

variable "lab_id" {
  description = "Set by perflab (unused here)."
  type        = string
  default     = "default"
}

variable "seperate_db_node" {
  description = "Kong's flag (its spelling); with bring-your-own a db_ip decides."
  type        = bool
  default     = false
}

output "kong-ip" {
  value = var.kong_ip
}

output "kong-internal-ip" {
  value = var.kong_internal_ip != "" ? var.kong_internal_ip : var.kong_ip
}

output "worker-ip" {
  value = var.worker_ip
}

output "worker-internal-ip" {
  value = var.worker_internal_ip != "" ? var.worker_internal_ip : var.worker_ip
}

output "db-ip" {
  value = var.db_ip
}

output "db-internal-ip" {
  value = var.db_internal_ip != "" ? var.db_internal_ip : var.db_ip
}

output "load-hosts" {
  description = "Every load host, the worker first."
  value = concat(
    [{ ip = var.worker_ip, internal_ip = var.worker_internal_ip != "" ? var.worker_internal_ip : var.worker_ip }],
    [for i, ip in var.load_ips : { ip = ip, internal_ip = length(var.load_internal_ips) > i ? var.load_internal_ips[i] : ip }]
  )
  precondition {
    condition     = var.load_host_count <= 1 + length(var.load_ips)
    error_message = "load_host_count is ${var.load_host_count}: name the ${var.load_host_count - 1} load host(s) besides the worker in load_ips (--driver-opt 'var.load_ips=[\"203.0.113.8\"]')."
  }
}

output "id_rsa" {
  value = var.ssh_key_path
}

output "ssh-user" {
  value = var.ssh_user
}

output "toolchain" {
  value = "installed over SSH"
}
