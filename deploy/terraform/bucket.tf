# The S3 bucket of the sealtrail archive: Object Lock (COMPLIANCE default retention),
# versioning, SSE-KMS, no public access, and a bucket policy that denies deletes, retention
# bypass and insecure transport. Lifecycle rules live in retention.tf (one lifecycle
# configuration per bucket; see the cold-storage variables below).
#
#   terraform init && terraform apply -var sealtrail_archive_bucket=acme-audit-archive
#
# NOT EXERCISED against AWS here: tests/integration/deploy/test_deploy.py checks these files with
# `terraform fmt -check` (syntax) and a structural check; `terraform validate` needs the
# AWS provider, which the development machines cannot download.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40"
    }
  }
}

variable "aws_region" {
  description = "Region of the archive bucket"
  type        = string
  default     = "eu-west-1"
}

variable "sealtrail_default_retention_mode" {
  description = "Default Object Lock mode of the bucket: COMPLIANCE (nobody can shorten it) or GOVERNANCE"
  type        = string
  default     = "COMPLIANCE"
  validation {
    condition     = contains(["COMPLIANCE", "GOVERNANCE"], var.sealtrail_default_retention_mode)
    error_message = "COMPLIANCE or GOVERNANCE."
  }
}

variable "sealtrail_default_retention_days" {
  description = "Default retention of objects written without their own (sealtrail always sets its own)"
  type        = number
  default     = 365
}

variable "sealtrail_cold_storage_after_days" {
  description = "Days after which archived objects move to sealtrail_cold_storage_class (used by the lifecycle rules in retention.tf)"
  type        = number
  default     = 90
}

variable "sealtrail_cold_storage_class" {
  description = "Colder storage class for old segments and checkpoints; Object Lock survives transitions"
  type        = string
  default     = "GLACIER_IR"
}

variable "sealtrail_writer_role_arns" {
  description = "IAM roles of the archiver: may put objects, retention and tags"
  type        = list(string)
  default     = []
}

variable "sealtrail_reader_role_arns" {
  description = "IAM roles of auditors and tools: may read, and put legal holds"
  type        = list(string)
  default     = []
}

provider "aws" {
  region = var.aws_region
}

resource "aws_kms_key" "archive" {
  description             = "sealtrail archive ${var.sealtrail_archive_bucket}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
}

resource "aws_s3_bucket" "archive" {
  bucket              = var.sealtrail_archive_bucket
  object_lock_enabled = true # only possible at creation; implies versioning
  force_destroy       = false

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "archive" {
  bucket = aws_s3_bucket.archive.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    default_retention {
      mode = var.sealtrail_default_retention_mode
      days = var.sealtrail_default_retention_days
    }
  }
  depends_on = [aws_s3_bucket_versioning.archive]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.archive.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket                  = aws_s3_bucket.archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "archive" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid    = "DenyDeletesAndRetentionBypass"
    effect = "Deny"
    actions = [
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:DeleteBucket",
      "s3:BypassGovernanceRetention",
      "s3:PutBucketObjectLockConfiguration",
      "s3:PutBucketVersioning",
    ]
    resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }

  statement {
    sid       = "DenyOldTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  dynamic "statement" {
    for_each = length(var.sealtrail_writer_role_arns) > 0 ? [1] : []
    content {
      sid    = "ArchiverWrites"
      effect = "Allow"
      actions = [
        "s3:PutObject", "s3:PutObjectRetention", "s3:PutObjectTagging", "s3:GetObject",
        "s3:GetObjectRetention", "s3:ListBucket",
      ]
      resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
      principals {
        type        = "AWS"
        identifiers = var.sealtrail_writer_role_arns
      }
    }
  }

  dynamic "statement" {
    for_each = length(var.sealtrail_reader_role_arns) > 0 ? [1] : []
    content {
      sid    = "AuditorsRead"
      effect = "Allow"
      actions = [
        "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention",
        "s3:GetObjectLegalHold", "s3:PutObjectLegalHold", "s3:ListBucket",
        "s3:ListBucketVersions",
      ]
      resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
      principals {
        type        = "AWS"
        identifiers = var.sealtrail_reader_role_arns
      }
    }
  }
}

resource "aws_s3_bucket_policy" "archive" {
  bucket = aws_s3_bucket.archive.id
  policy = data.aws_iam_policy_document.archive.json
  # The policy denies changing Object Lock and versioning: apply it after both. Changing
  # them later means removing this policy first, deliberately, as an audited change.
  depends_on = [
    aws_s3_bucket_public_access_block.archive,
    aws_s3_bucket_object_lock_configuration.archive,
    aws_s3_bucket_versioning.archive,
  ]
}

output "sealtrail_archive_url" {
  description = "Value for SEALTRAIL_ARCHIVE_URL"
  value       = "s3://${aws_s3_bucket.archive.id}/audit"
}

output "sealtrail_archive_kms_key_arn" {
  value = aws_kms_key.archive.arn
}
