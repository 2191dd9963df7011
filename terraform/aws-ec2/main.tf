# Two (or three, and more with load_host_count > 1) Ubuntu machines on AWS EC2. Credentials come
# from the standard AWS_* environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
# or AWS_PROFILE), never from variables on a command line. SSH user: ubuntu (passwordless sudo).

terraform {
  required_version = ">= 1.4"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
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
  description = "Set by perflab: names and tags the lab's resources."
  type        = string
  default     = "default"
}

variable "aws_region" {
  description = "Region (PERF_TEST_AWS_REGION)."
  type        = string
  default     = "us-east-2"
}

variable "ec2_instance_type" {
  description = "Instance type of the kong machine (PERF_TEST_EC2_INSTANCE_TYPE)."
  type        = string
  default     = "c5a.2xlarge"
}

variable "ec2_instance_worker_type" {
  description = "Instance type of the worker machine."
  type        = string
  default     = "c5a.large"
}

variable "ec2_instance_db_type" {
  description = "Instance type of the separate database machine."
  type        = string
  default     = "c5a.large"
}

variable "ec2_os" {
  description = "AMI name filter of the Ubuntu image, owner Canonical (PERF_TEST_EC2_OS)."
  type        = string
  default     = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
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

provider "aws" {
  region = var.aws_region
}

resource "tls_private_key" "key" {
  algorithm = "ED25519"
}

resource "local_sensitive_file" "id_rsa" {
  content         = tls_private_key.key.private_key_openssh
  filename        = "${path.root}/id_rsa"
  file_permission = "0600"
}

resource "aws_key_pair" "perf" {
  key_name   = "perflab-${var.lab_id}"
  public_key = tls_private_key.key.public_key_openssh
}

data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"] # Canonical

  filter {
    name   = "name"
    values = [var.ec2_os]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

resource "aws_security_group" "perf" {
  name        = "perflab-${var.lab_id}"
  description = "perflab lab ${var.lab_id}: SSH from the controller only, lab ports between lab machines only"

  ingress {
    description = "SSH from the controller"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = [var.controller_cidr]
  }

  # Members of this group reach each other on their private addresses: the lab's ports
  # (gateway, upstream, PostgreSQL, admin API) are open to no one else.
  ingress {
    description = "between lab machines"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  # Packages are installed over SSH (apt): outbound stays open.
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = {
    PerfTest = "perflab-${var.lab_id}"
  }
}

locals {
  # Load hosts beyond the worker (load_host_count - 1 of them).
  extra_load_hosts = [for i in range(2, var.load_host_count + 1) : "load-${i}"]
  machines = merge(
    {
      kong   = var.ec2_instance_type
      worker = var.ec2_instance_worker_type
    },
    var.seperate_db_node ? { db = var.ec2_instance_db_type } : {},
    { for name in local.extra_load_hosts : name => var.ec2_instance_worker_type }
  )
}

resource "aws_instance" "machine" {
  for_each               = local.machines
  ami                    = data.aws_ami.ubuntu.id
  instance_type          = each.value
  key_name               = aws_key_pair.perf.key_name
  vpc_security_group_ids = [aws_security_group.perf.id]

  root_block_device {
    volume_size = 100
  }

  tags = {
    Name     = "perflab-${var.lab_id}-${each.key}"
    PerfTest = "perflab-${var.lab_id}"
  }
}

output "kong-ip" {
  value = aws_instance.machine["kong"].public_ip
}

output "kong-internal-ip" {
  value = aws_instance.machine["kong"].private_ip
}

output "worker-ip" {
  value = aws_instance.machine["worker"].public_ip
}

output "worker-internal-ip" {
  value = aws_instance.machine["worker"].private_ip
}

output "db-ip" {
  value = var.seperate_db_node ? aws_instance.machine["db"].public_ip : ""
}

output "db-internal-ip" {
  value = var.seperate_db_node ? aws_instance.machine["db"].private_ip : ""
}

output "load-hosts" {
  description = "Every load host, the worker first."
  value = [for name in concat(["worker"], local.extra_load_hosts) : {
    ip          = aws_instance.machine[name].public_ip
    internal_ip = aws_instance.machine[name].private_ip
  }]
}

output "id_rsa" {
  description = "Path of the private key (relative to the state dir)."
  value       = local_sensitive_file.id_rsa.filename
}

output "ssh-user" {
  value = "ubuntu"
}

output "toolchain" {
  value = "installed over SSH (apt)"
}
