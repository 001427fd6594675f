# A golden image shared with another account (for example production), built in one Region.
#
#   amiguard build -var 'share_with=["210987654321"]' golden-shared.pkr.hcl
#
# Sharing an AMI encrypted with the AWS managed key aws/ebs fails at the very end of a build.
# amiguard's default intent (auto) sees `ami_users` and checks that the AMI will be shareable
# before anything is launched; give it a customer managed key (--kms-key, AMIGUARD_KMS_KEY or
# amiguard.toml) and it injects encrypt_boot/kms_key_id into a temporary copy of this file.

variable "region" {
  type    = string
  default = "ap-northeast-1"
}

variable "share_with" {
  type        = list(string)
  description = "Account ids that may launch the AMI."
}

variable "source_ami" {
  type        = string
  default     = ""
  description = "A source AMI id; empty to take the latest Amazon Linux 2023 image."
}

# For the local twin only (make demo): real AWS needs none of these.
variable "endpoint" {
  type    = string
  default = ""
}
variable "communicator" {
  type    = string
  default = "ssh"
}
variable "skip_region_validation" {
  type    = bool
  default = false
}

source "amazon-ebs" "golden" {
  region        = var.region
  instance_type = "t3.micro"
  ami_name      = "golden-${formatdate("YYYYMMDD-hhmmss", timestamp())}"
  ami_users     = var.share_with

  source_ami = var.source_ami
  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-x86_64"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  communicator           = var.communicator
  ssh_username           = "ec2-user"
  custom_endpoint_ec2    = var.endpoint
  skip_region_validation = var.skip_region_validation
}

build {
  sources = ["source.amazon-ebs.golden"]
}
